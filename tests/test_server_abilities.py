"""What a server offers (listed or probed), models described without a configuration, inputs the user describes.

Unit tests of the logic; tests/test_other_servers.py runs the same against real KServe and MLServer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from perfprobe.client.abilities import ServerAbilities, learn
from perfprobe.client.errors import InferenceServerError
from perfprobe.client.model import UNKNOWN_BATCH_LIMIT, ModelDescription
from perfprobe.data.synthetic import parse_shape_datatypes, parse_shape_option
from perfprobe.errors import UsageError
from perfprobe.load.dataset import DataOptions, load_items, with_described_inputs

TRITON_LIST = ["classification", "model_repository", "model_repository(unload_dependents)", "statistics",
               "binary_tensor_data", "system_shared_memory", "cuda_shared_memory", "model_configuration"]  # fmt: skip


class FakeCoreOnlyClient:
    """A fake server with the core protocol: metadata answers, statistics as told."""

    def __init__(self, extensions: list[str], statistics: dict[str, Any] | None) -> None:
        self.extensions = extensions
        self.statistics = statistics
        self.statistics_asked = 0

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "fake", "version": "1", "extensions": self.extensions}

    def inference_statistics(self, model_name: str = "") -> dict[str, Any]:
        self.statistics_asked += 1
        if self.statistics is None:
            raise InferenceServerError("Not Found", http_status=404)
        return self.statistics


def test_listed_extensions_are_read_under_their_plain_names() -> None:
    triton = ServerAbilities.from_metadata({"name": "triton", "version": "2.51.0", "extensions": TRITON_LIST})
    assert triton.has("model_repository") and triton.has("statistics") and triton.has("binary_tensor_data")
    kserve = ServerAbilities.from_metadata({"name": "kserve", "extensions": ["model_repository_extension"]})
    assert kserve.has("model_repository") and not kserve.has("statistics")
    assert kserve.missing("statistics") == "the server (kserve) has no statistics extension"


def test_a_listed_extension_is_not_probed_and_a_silent_list_is() -> None:
    listed = FakeCoreOnlyClient(["statistics", "model_configuration"], None)
    assert learn(listed, "simple", config_found=True).has("statistics")
    assert listed.statistics_asked == 0
    silent_with = FakeCoreOnlyClient([], {"model_stats": []})
    found = learn(silent_with, "simple", config_found=False)
    assert found.has("statistics") and not found.has("model_configuration")
    assert found.probed == {"statistics": True, "model_configuration": False}
    silent_without = FakeCoreOnlyClient([], None)
    assert not learn(silent_without, "simple", config_found=False).has("statistics")


def test_a_probe_that_fails_otherwise_is_not_taken_for_an_absent_extension() -> None:
    class Broken(FakeCoreOnlyClient):
        def inference_statistics(self, model_name: str = "") -> dict[str, Any]:
            raise InferenceServerError("boom", http_status=500)

    with pytest.raises(InferenceServerError):
        learn(Broken([], None), "simple", config_found=False)


def test_a_model_without_configuration_batches_when_every_input_starts_with_minus_one() -> None:
    metadata = {
        "name": "m",
        "versions": None,
        "inputs": [
            {"name": "A", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "B", "datatype": "INT32", "shape": [-1]},
        ],
        "outputs": [{"name": "Y", "datatype": "FP32", "shape": [-1, 3]}],
    }
    model = ModelDescription.from_dicts(metadata, None)
    assert not model.config_known and model.batching and model.max_batch_size == UNKNOWN_BATCH_LIMIT
    assert [spec.shape for spec in model.inputs] == [(3,), ()] and model.outputs[0].shape == (3,)
    fixed = ModelDescription.from_dicts(
        {**metadata, "inputs": [{"name": "A", "datatype": "FP32", "shape": [2, 3]}]}, None
    )
    assert not fixed.batching and fixed.inputs[0].shape == (2, 3)


def _bare(name: str = "simple") -> ModelDescription:
    return ModelDescription.from_metadata({"name": name, "inputs": [], "outputs": []})


def _data(tmp_path: Path, item: dict[str, Any]) -> str:
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"data": [item]}))
    return str(path)


def test_inputs_come_from_the_data_file_with_datatypes_read_or_given(tmp_path: Path) -> None:
    source = _data(
        tmp_path,
        {
            "I32": {"content": [1, 2, 3, 4], "shape": [2, 2]},
            "I64": [2**40, 1],
            "F": {"content": [0.5, 1.5]},
            "T": ["a", "b"],
            "B": [True, False],
            "GIVEN": {"content": [1, 2], "datatype": "int16"},
        },
    )
    model, note = with_described_inputs(_bare(), DataOptions(source=source))
    assert {spec.name: (spec.datatype, spec.shape) for spec in model.inputs} == {
        "I32": ("INT32", (2, 2)),
        "I64": ("INT64", (2,)),
        "F": ("FP32", (2,)),
        "T": ("BYTES", (2,)),
        "B": ("BOOL", (2,)),
        "GIVEN": ("INT16", (2,)),
    }
    assert "datatypes read from the values" in note and not model.batching
    item = load_items(model, DataOptions(source=source))[0]
    assert item["I32"].tolist() == [[1, 2], [3, 4]] and str(item["GIVEN"].dtype) == "int16"


def test_a_batch_above_one_adds_the_batch_dimension_to_the_described_shapes(tmp_path: Path) -> None:
    source = _data(tmp_path, {"X": {"content": [1, 2, 3], "shape": [3]}})
    model, _ = with_described_inputs(_bare(), DataOptions(source=source, batch_size=4))
    assert model.batching and model.inputs[0].shape == (3,)
    assert load_items(model, DataOptions(source=source, batch_size=4))[0]["X"].shape == (4, 3)


def test_shapes_with_datatypes_describe_inputs_and_a_missing_one_is_named() -> None:
    shapes = ["INPUT0:1,16:INT32", "INPUT1:1,16:fp32"]
    assert parse_shape_option(shapes) == {"INPUT0": (1, 16), "INPUT1": (1, 16)}
    assert parse_shape_datatypes(shapes) == {"INPUT0": "INT32", "INPUT1": "FP32"}
    options = DataOptions(source="zero", shapes=parse_shape_option(shapes), datatypes=parse_shape_datatypes(shapes))
    model, note = with_described_inputs(_bare(), options)
    assert [(s.name, s.datatype, s.shape) for s in model.inputs] == [
        ("INPUT0", "INT32", (1, 16)),
        ("INPUT1", "FP32", (1, 16)),
    ]
    assert "as --shape describes them" in note
    with pytest.raises(UsageError, match=r"datatype of INPUT0; add it to --shape \(INPUT0:1,16:INT32"):
        with_described_inputs(_bare(), DataOptions(source="zero", shapes={"INPUT0": (1, 16)}))
    with pytest.raises(UsageError, match="does not say which inputs it takes"):
        with_described_inputs(_bare(), DataOptions(source="random"))


def test_base64_data_needs_its_datatype_and_shape(tmp_path: Path) -> None:
    source = _data(tmp_path, {"X": {"b64": "AAAAAA=="}})
    with pytest.raises(UsageError, match='base64 data needs its "datatype"'):
        with_described_inputs(_bare(), DataOptions(source=source))
    typed = _data(tmp_path, {"X": {"b64": "AAAAAA==", "datatype": "INT32", "shape": [1]}})
    model, _ = with_described_inputs(_bare(), DataOptions(source=typed))
    assert model.inputs[0].datatype == "INT32" and model.inputs[0].shape == (1,)


def test_a_model_the_server_describes_is_left_as_it_is() -> None:
    described = ModelDescription.from_metadata(
        {"name": "m", "inputs": [{"name": "A", "datatype": "FP32", "shape": [4]}]}
    )
    assert with_described_inputs(described, DataOptions()) == (described, "")
