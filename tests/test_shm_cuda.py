"""CUDA shared memory: a clean refusal without a device; the real round trip wherever one is found."""

from __future__ import annotations

import numpy as np
import pytest

from perfprobe.shm import cuda


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
    inputs = cuda.CudaRegion("pp_cuda_in", data.nbytes).create()
    outputs = cuda.CudaRegion("pp_cuda_out", data.nbytes).create()
    try:
        with make_client("http", server.http_url) as client:
            inputs.write(data.tobytes())
            inputs.register(client)
            outputs.register(client)
            client.infer(
                "identity",
                [
                    InferInput(
                        "INPUT0", datatype="FP32", shape=[1024], shared_memory=SharedMemoryRef(inputs.name, data.nbytes)
                    )
                ],
                [RequestedOutput("OUTPUT0", shared_memory=SharedMemoryRef(outputs.name, data.nbytes))],
            )
            assert outputs.read(data.nbytes) == data.tobytes()
    finally:
        assert not inputs.close() and not outputs.close()
