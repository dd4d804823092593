"""CUDA shared memory: a clean refusal without a device; the real round trip wherever one is found."""

from __future__ import annotations

import numpy as np
import pytest

from perfprobe.shm import cuda, region_set


def _has_gpu() -> bool:
    try:
        cuda.require_device(0)
    except cuda.CudaUnavailable:
        return False
    return True


HAS_GPU = _has_gpu()


@pytest.mark.skipif(HAS_GPU, reason="this machine has a CUDA device: the refusal path cannot be shown")
def test_refusal_without_a_device() -> None:
    with pytest.raises(cuda.CudaUnavailable) as refused:
        cuda.CudaRegion("pp_cuda_test", 1024).create()
    assert str(refused.value).startswith("CUDA shared memory needs a CUDA device: ")
    assert refused.value.exit_code == 5


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device (none on this machine)")
def test_cuda_round_trip_through_the_server(server) -> None:
    from perfprobe.client import InferInput, RequestedOutput, SharedMemoryRef, make_client

    data = np.arange(1024, dtype=np.float32)
    with make_client("http", server.http_url) as client:
        inputs = cuda.CudaRegion("pp_cuda_in", data.nbytes).create()
        outputs = cuda.CudaRegion("pp_cuda_out", data.nbytes).create()
        try:
            inputs.write(data.tobytes())
            inputs.register(client)
            outputs.register(client)
            reference = SharedMemoryRef(inputs.name, data.nbytes)
            client.infer(
                "identity",
                [InferInput("INPUT0", datatype="FP32", shape=[1024], shared_memory=reference)],
                [RequestedOutput("OUTPUT0", shared_memory=SharedMemoryRef(outputs.name, data.nbytes))],
            )
            assert outputs.read(data.nbytes) == data.tobytes()
        finally:  # unregistered while the client is still open
            assert not inputs.close() and not outputs.close()


@pytest.mark.skipif(HAS_GPU, reason="this machine has a CUDA device: the refusal path cannot be shown")
def test_region_set_refuses_before_allocating() -> None:
    with pytest.raises(cuda.CudaUnavailable, match="needs a CUDA device"):
        region_set("cuda", "test", 0)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device (none on this machine)")
def test_cuda_sweep_and_infer_match_the_wire(server, tmp_path) -> None:
    """sweep and infer with --shared-memory cuda: no errors, outputs equal the wire's, nothing left registered."""
    import csv

    from conftest import run_perfprobe

    from perfprobe.client import make_client

    sweep = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", "identity", "--shape", "INPUT0:65536", "--shared-memory", "cuda",
        "--output-shared-memory-size", "262144", "--concurrency", "1:2", "--measurement-interval", "500",
        "--max-trials", "3", "--no-report", "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    with (tmp_path / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and all(r["Errors"] == "0" and float(r["Inferences/Second"]) > 0 for r in rows)
    common = ("infer", "-u", server.http_url, "-m", "identity", "--shape", "INPUT0:1024", "--input-data", "zero")
    wire = run_perfprobe(*common)
    over_cuda = run_perfprobe(*common, "--shared-memory", "cuda", "--output-shared-memory-size", "4096")
    assert wire.returncode == 0 and over_cuda.returncode == 0, over_cuda.stderr
    assert over_cuda.stdout == wire.stdout
    with make_client("http", server.http_url) as client:
        assert not [name for name in client.cuda_shared_memory_status() if name.startswith("perfprobe_")]
