"""The committed protobuf modules are exactly what protoc makes of protos/, and match Triton's wire facts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from perfprobe.client._proto import grpc_service_pb2 as pb
from perfprobe.client._proto import model_config_pb2 as mc

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_modules_match_protos(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is a dev dependency")
    written = _generator().generate(tmp_path)
    assert {p.name for p in written} == {p.name for p in (ROOT / "perfprobe/client/_proto").glob("*_pb2*.py")}
    for fresh in written:
        committed = ROOT / "perfprobe/client/_proto" / fresh.name
        assert fresh.read_text() == committed.read_text(), f"{fresh.name} drifted: run python protos/generate.py"


@pytest.mark.parametrize(
    ("message", "field", "number"),
    [
        (pb.ModelInferRequest, "raw_input_contents", 7),
        (pb.ModelInferRequest, "outputs", 6),
        (pb.ModelInferResponse, "raw_output_contents", 6),
        (pb.ModelStreamInferResponse, "infer_response", 2),
        (pb.ModelStatistics, "inference_stats", 6),
        (pb.InferStatistics, "cache_miss", 8),
        (pb.CudaSharedMemoryRegisterRequest, "raw_handle", 2),
        (pb.InferParameter, "uint64_param", 5),
        (mc.ModelConfig, "backend", 17),
        (mc.ModelConfig, "model_transaction_policy", 19),
        (mc.ModelConfig, "ensemble_scheduling", 15),
        (mc.ModelInput, "format", 3),
    ],
)
def test_field_numbers_are_tritons(message, field: str, number: int) -> None:
    assert message.DESCRIPTOR.fields_by_name[field].number == number


def test_service_name_and_stream_shape() -> None:
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    stream = service.methods_by_name["ModelStreamInfer"]
    assert stream.output_type.name == "ModelStreamInferResponse"
    assert mc.DataType.Value("TYPE_BF16") == 14 and mc.DataType.Value("TYPE_STRING") == 13
