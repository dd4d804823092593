"""Every client call against the real embedded Triton, once per protocol."""

from __future__ import annotations

import json
import mmap
import os
import threading
import time

import numpy as np
import pytest

from perfprobe.client import (
    InferenceClient,
    InferenceServerError,
    InferInput,
    InferResult,
    RequestedOutput,
    RequestOptions,
    SharedMemoryRef,
    datatypes,
    make_client,
)
from perfprobe.client.grpc_client import GrpcClient

FIXED_TYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64")


def _simple_inputs(a: np.ndarray, b: np.ndarray) -> list[InferInput]:
    return [InferInput("INPUT0", a, "INT32"), InferInput("INPUT1", b, "INT32")]


def _pair(batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    a = np.arange(16 * batch, dtype=np.int32).reshape(batch, 16)
    return a, np.full((batch, 16), 3, dtype=np.int32)


def test_health_and_metadata(client: InferenceClient, server) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("simple")
    assert not client.is_model_ready("no_such_model")
    meta = client.server_metadata()
    assert meta["version"] == server.version
    assert "system_shared_memory" in meta["extensions"] and "statistics" in meta["extensions"]
    model = client.model_metadata("simple")
    assert [t["name"] for t in model["inputs"]] == ["INPUT0", "INPUT1"]
    assert model["inputs"][0]["datatype"] == "INT32" and list(model["inputs"][0]["shape"]) == [-1, 16]


def test_describe_model_is_the_same_over_both_protocols(server) -> None:
    described = {}
    for protocol in ("http", "grpc"):
        with make_client(protocol, server.url(protocol)) as made:
            described[protocol] = made.describe_model("resnet50")
    http, grpc_ = described["http"], described["grpc"]
    assert http == grpc_
    assert http.max_batch_size == 32 and http.dynamic_batching is not None
    assert http.inputs[0].shape == (3, 224, 224) and http.inputs[0].format == "FORMAT_NCHW"
    assert http.outputs[0].label_filename == "labels.txt"
    assert not http.decoupled and not http.is_ensemble


def test_decoupled_and_optional_inputs_are_described(client: InferenceClient) -> None:
    model = client.describe_model("repeat_decoupled")
    assert model.decoupled
    assert model.input("DELAY_MS").optional and not model.input("COUNT").optional
    identity = client.describe_model("identity")
    assert identity.max_batch_size == 0 and identity.inputs[0].is_variable


def test_sync_infer_sum_and_difference(client: InferenceClient) -> None:
    a, b = _pair(batch=3)
    result = client.infer("simple", _simple_inputs(a, b), options=RequestOptions(request_id="req-7"))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert result.id == "req-7"
    assert result.model_name == "simple"


def test_request_options_reach_the_server(client: InferenceClient) -> None:
    """request_echo returns what Triton handed the model: id, sequence, flags, timeout, parameters."""
    options = RequestOptions(
        request_id="r9",
        sequence_id=42,
        sequence_start=True,
        priority=1,
        timeout_us=7_000_000,
        parameters={"custom_flag": True, "n": 3, "s": "x"},
    )
    seen = client.infer("request_echo", [InferInput("INPUT0", np.zeros(2, np.int32))], options=options)
    assert seen.as_numpy("REQUEST_ID")[0] == b"r9"
    assert int(seen.as_numpy("CORRELATION_ID")[0]) == 42
    assert int(seen.as_numpy("FLAGS")[0]) == 1  # sequence start, not end
    assert int(seen.as_numpy("TIMEOUT_US")[0]) == 7_000_000
    assert json.loads(seen.as_numpy("PARAMETERS")[0]) == {"custom_flag": True, "n": 3, "s": "x"}
    ended = client.infer(
        "request_echo",
        [InferInput("INPUT0", np.zeros(2, np.int32))],
        options=RequestOptions(sequence_id=42, sequence_end=True),
    )
    assert int(ended.as_numpy("FLAGS")[0]) == 2  # sequence end


def test_requested_subset_of_outputs(client: InferenceClient) -> None:
    a, b = _pair()
    result = client.infer("simple", _simple_inputs(a, b), [RequestedOutput("OUTPUT1")])
    assert result.output_names == ["OUTPUT1"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


def test_every_fixed_size_datatype_round_trips(client: InferenceClient) -> None:
    rng = np.random.default_rng(11)
    arrays = {}
    for name in FIXED_TYPES:
        dtype = datatypes.numpy_dtype(name)
        if dtype.kind == "b":
            arrays[name] = rng.integers(0, 2, 7).astype(bool)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            arrays[name] = np.array([info.min, info.max, 0, 1, 2, 3, 4], dtype=dtype)
        else:
            arrays[name] = np.array([-1.5, 0.0, 2.25, 1e-3, 1e3, 7.0, -0.5], dtype=dtype)
    inputs = [InferInput(f"IN_{name}", array, name) for name, array in arrays.items()]
    result = client.infer("dtype_echo", inputs)
    for name, array in arrays.items():
        out = result.as_numpy(f"OUT_{name}")
        assert result.output(f"OUT_{name}").datatype == name
        assert out.dtype == array.dtype
        np.testing.assert_array_equal(out, array)


def test_bf16_round_trip(client: InferenceClient) -> None:
    values = np.array([1.0, -2.5, 3.140625, 65280.0], dtype=np.float32)  # all exact in bfloat16
    result = client.infer("bf16_echo", [InferInput("INPUT0", values, "BF16")])
    assert result.output("OUTPUT0").datatype == "BF16"
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), values)


def test_bytes_with_embedded_zero_bytes(client: InferenceClient) -> None:
    values = np.array([b"\x00", b"a\x00b", b"", b"\xff\x00\x00", "unicode \u00e9".encode()], dtype=object)
    result = client.infer("bytes_echo", [InferInput("INPUT0", values, "BYTES")])
    assert list(result.as_numpy("OUTPUT0")) == list(values)


def test_http_json_tensors_match_binary(server) -> None:
    from perfprobe.client.http_client import HttpClient

    a, b = _pair(batch=2)
    with HttpClient(server.http_url) as http:
        binary = http.send(http.build_request("simple", _simple_inputs(a, b)))
        outputs = [RequestedOutput("OUTPUT0", binary=False), RequestedOutput("OUTPUT1", binary=False)]
        request = http.build_request("simple", _simple_inputs(a, b), outputs, binary_inputs=False)
        assert b"binary_data_size" not in request.body and "Inference-Header-Content-Length" not in request.headers
        as_json = http.send(request)
        assert "binary_data_size" not in as_json.output("OUTPUT0").parameters
        for name in ("OUTPUT0", "OUTPUT1"):
            np.testing.assert_array_equal(as_json.as_numpy(name), binary.as_numpy(name))
        texts = np.array([b"x\x00y", b"plain"], dtype=object)
        echoed = http.infer(
            "bytes_echo", [InferInput("INPUT0", texts[1:], "BYTES")], [RequestedOutput("OUTPUT0", False)]
        )
        assert list(echoed.as_numpy("OUTPUT0")) == [b"plain"]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compression(server, protocol: str, algorithm: str) -> None:
    a, b = _pair(batch=8)
    if protocol == "http":
        options = {"request_compression": algorithm, "response_compression": algorithm}
    else:
        options = {"request_compression": algorithm}
    with make_client(protocol, server.url(protocol), **options) as compressed:
        if protocol == "http":
            request = compressed.build_request("simple", _simple_inputs(a, b))
            assert request.headers["Content-Encoding"] == algorithm
        result = compressed.infer("simple", _simple_inputs(a, b))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)


def test_async_infer_delivers_through_callback(client: InferenceClient) -> None:
    results: list[InferResult] = []
    errors: list[Exception] = []
    done = threading.Event()
    expected = 6

    def callback(result, error) -> None:
        (results if error is None else errors).append(result if error is None else error)
        if len(results) + len(errors) == expected:
            done.set()

    handles = []
    for index in range(expected):
        a = np.full((1, 16), index, dtype=np.int32)
        handles.append(
            client.async_infer("simple", _simple_inputs(a, a), callback, options=RequestOptions(request_id=str(index)))
        )
    for handle in handles:
        if hasattr(handle, "join"):
            handle.join()
    assert done.wait(30)
    assert not errors
    assert sorted(int(r.id) for r in results) == list(range(expected))
    for result in results:
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((1, 16), 2 * int(result.id)))


def test_async_error_goes_to_the_callback(client: InferenceClient) -> None:
    box: list = []
    done = threading.Event()
    handle = client.async_infer(
        "no_such_model", [InferInput("X", np.zeros(1, np.int32))], lambda r, e: (box.append(e), done.set())
    )
    if hasattr(handle, "join"):
        handle.join()
    assert done.wait(30)
    assert isinstance(box[0], InferenceServerError)


def _grpc(server) -> GrpcClient:
    return GrpcClient(server.grpc_url)


def test_stream_infer_many_requests(server) -> None:
    results: list[InferResult] = []
    with _grpc(server) as grpc_client:
        stream = grpc_client.start_stream(lambda r, e: results.append(r if e is None else e))
        for index in range(5):
            a = np.full((1, 16), index, dtype=np.int32)
            stream.send(
                grpc_client.build_request("simple", _simple_inputs(a, a), options=RequestOptions(request_id=str(index)))
            )
        stream.close(timeout_s=30)
    assert all(isinstance(r, InferResult) for r in results), results
    assert sorted(int(r.id) for r in results) == list(range(5))


def test_decoupled_model_sends_n_responses(server) -> None:
    received: list[InferResult] = []
    finished = threading.Event()

    def callback(result, error) -> None:
        assert error is None, error
        received.append(result)
        if not result.is_final:
            return
        finished.set()

    with _grpc(server) as grpc_client:
        stream = grpc_client.start_stream(callback)
        options = RequestOptions(request_id="d1", parameters={"triton_enable_empty_final_response": True})
        stream.send(
            grpc_client.build_request(
                "repeat_decoupled", [InferInput("COUNT", np.array([4], np.int32))], options=options
            )
        )
        assert finished.wait(30)
        stream.close(timeout_s=30)
    data = [r for r in received if r.outputs]
    assert [int(r.as_numpy("INDEX")[0]) for r in data] == [0, 1, 2, 3]
    assert all(not r.is_final for r in data)
    assert received[-1].is_final and not received[-1].outputs  # the empty final response
    assert all(r.id == "d1" for r in received)


def test_stream_error_from_server_reaches_callback(server) -> None:
    got: list = []
    with _grpc(server) as grpc_client:
        stream = grpc_client.start_stream(lambda r, e: got.append(e))
        stream.send(grpc_client.build_request("simple", [InferInput("INPUT0", np.zeros((1, 3), np.int32))]))
        stream.close(timeout_s=30)
    assert got and isinstance(got[0], InferenceServerError)


def test_grpc_health_service(server) -> None:
    with _grpc(server) as grpc_client:
        assert grpc_client.health_check() == "SERVING"


def test_statistics_count_our_requests(client: InferenceClient) -> None:
    def success_count() -> int:
        stats = client.inference_statistics("simple")["model_stats"][0]
        return int(stats["inference_stats"]["success"]["count"])

    before = success_count()
    a, b = _pair()
    for _ in range(3):
        client.infer("simple", _simple_inputs(a, b))
    # the server counts a request when it releases it, which may be a moment after its response
    deadline = time.monotonic() + 2.0
    while success_count() - before < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert success_count() - before == 3
    every = client.inference_statistics()["model_stats"]
    assert {"simple", "identity", "resnet50"} <= {m["name"] for m in every}
    stats = client.inference_statistics("simple")["model_stats"][0]["inference_stats"]
    assert set(stats) >= {"success", "fail", "queue", "compute_input", "compute_infer", "compute_output"}
    assert stats["fail"] == {"count": stats["fail"]["count"], "ns": stats["fail"]["ns"]}


def test_repository_index_and_load_unload(client: InferenceClient) -> None:
    index = {m["name"]: m for m in client.repository_index()}
    assert index["simple"]["state"] == "READY"
    client.unload_model("bytes_echo")
    try:
        assert not client.is_model_ready("bytes_echo")
        states = {m["name"]: m.get("state") for m in client.repository_index()}
        assert states["bytes_echo"] != "READY"
    finally:
        client.load_model("bytes_echo")
    assert client.is_model_ready("bytes_echo")


def test_trace_and_log_settings(client: InferenceClient) -> None:
    trace = client.trace_settings()
    assert trace["trace_level"] == ["OFF"]
    assert "trace_rate" in trace
    updated = client.trace_settings("simple", {"trace_rate": "500"})
    assert updated["trace_rate"] == "500"
    client.trace_settings("simple", {"trace_rate": None})
    log = client.log_settings()
    assert log["log_info"] is True
    try:
        assert client.log_settings({"log_verbose_level": 1})["log_verbose_level"] == 1
        assert client.log_settings({"log_verbose_level": 0})["log_verbose_level"] == 0
    finally:  # the shared server's log keeps its detail for the rest of the session (to date a crash)
        client.log_settings({"log_verbose_level": log["log_verbose_level"]})


def test_system_shared_memory_api_and_infer(client: InferenceClient, protocol: str) -> None:
    key = f"/perfprobe_test_{os.getpid()}_{protocol}"
    region = f"pp_test_region_{protocol}"
    size = 4 * 16 * 4  # two inputs and two outputs of INT32[1,16]
    fd = os.open(f"/dev/shm{key}", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size) as mapped:
            a, b = _pair()
            mapped[0:64] = a.tobytes()
            mapped[64:128] = b.tobytes()
            client.register_system_shared_memory(region, key, size)
            try:
                status = client.system_shared_memory_status()
                assert status[region]["key"] == key and int(status[region]["byte_size"]) == size
                assert region in client.system_shared_memory_status(region)
                inputs = [
                    InferInput("INPUT0", datatype="INT32", shape=[1, 16], shared_memory=SharedMemoryRef(region, 64, 0)),
                    InferInput(
                        "INPUT1", datatype="INT32", shape=[1, 16], shared_memory=SharedMemoryRef(region, 64, 64)
                    ),
                ]
                outputs = [
                    RequestedOutput("OUTPUT0", shared_memory=SharedMemoryRef(region, 64, 128)),
                    RequestedOutput("OUTPUT1", shared_memory=SharedMemoryRef(region, 64, 192)),
                ]
                result = client.infer("simple", inputs, outputs)
                assert result.as_numpy("OUTPUT0") is None  # written to the region, not the response
                np.testing.assert_array_equal(np.frombuffer(mapped[128:192], np.int32), (a + b).ravel())
                np.testing.assert_array_equal(np.frombuffer(mapped[192:256], np.int32), (a - b).ravel())
            finally:
                client.unregister_system_shared_memory(region)
            assert region not in client.system_shared_memory_status()
    finally:
        os.close(fd)
        os.unlink(f"/dev/shm{key}")
    with pytest.raises(ValueError, match="every region"):
        client.unregister_system_shared_memory("")


def test_cuda_shared_memory_status_and_refusal(client: InferenceClient) -> None:
    assert client.cuda_shared_memory_status() == {}
    with pytest.raises(InferenceServerError):
        client.register_cuda_shared_memory("pp_cuda_bogus", b"\x00" * 64, 0, 1024)  # no GPU / bogus handle


def test_errors_carry_status_and_message(client: InferenceClient, protocol: str) -> None:
    with pytest.raises(InferenceServerError) as unknown:
        client.infer("no_such_model", [InferInput("X", np.zeros(1, np.int32))])
    if protocol == "http":
        assert unknown.value.http_status in (400, 404)
    else:
        assert unknown.value.grpc_code in ("NOT_FOUND", "UNAVAILABLE", "INVALID_ARGUMENT")
    assert "no_such_model" in unknown.value.message
    with pytest.raises(InferenceServerError) as wrong_shape:
        client.infer("simple", _simple_inputs(np.zeros((1, 5), np.int32), np.zeros((1, 5), np.int32)))
    assert "shape" in wrong_shape.value.message.lower()
    with pytest.raises(InferenceServerError) as wrong_type:
        client.infer(
            "simple",
            [InferInput("INPUT0", np.zeros((1, 16), np.float32)), InferInput("INPUT1", np.zeros((1, 16), np.float32))],
        )
    assert "datatype" in wrong_type.value.message.lower() or "data-type" in wrong_type.value.message.lower()


def test_unreachable_server_is_a_clear_error(protocol: str) -> None:
    from perfprobe.server.launcher import free_ports

    (port,) = free_ports(1)
    options = {"timeout_s": 2.0}
    with make_client(protocol, f"127.0.0.1:{port}", **options) as nowhere, pytest.raises(InferenceServerError) as err:
        nowhere.server_metadata()
    assert err.value.http_status is None
    assert err.value.grpc_code in (None, "UNAVAILABLE", "DEADLINE_EXCEEDED")
