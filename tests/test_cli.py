"""The perfprobe command against the real server: output and exit codes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import own_segments
from conftest import run_perfprobe as perfprobe

from perfprobe import exitcodes


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "noise.jpg"
    pixels = (np.random.default_rng(5).random((180, 240, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_infer_image_prints_top_k(server, protocol: str, jpeg: Path) -> None:
    result = perfprobe(
        "infer", "-m", "resnet50", "-i", protocol, "-u", server.url(protocol), "-c", "3", "-s", "INCEPTION", str(jpeg)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"Image '{jpeg}':"
    scores = [re.fullmatch(r"\s+([0-9.]+) \((\d+)\) = (synthetic_class_\d{4})", line) for line in lines[1:]]
    assert len(scores) == 3 and all(scores)
    values = [float(m.group(1)) for m in scores]
    assert values == sorted(values, reverse=True)
    assert all(m.group(3) == f"synthetic_class_{int(m.group(2)):04d}" for m in scores)


def test_infer_folder_in_batches_async(server, jpeg: Path, tmp_path: Path) -> None:
    from PIL import Image

    for index in range(3):
        Image.open(jpeg).rotate(90 * index).save(tmp_path / f"img{index}.png")
    result = perfprobe("infer", "-m", "resnet50", "-u", server.http_url, "-b", "2", "-a", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Image '") == 3


def test_infer_generated_data_streaming(server) -> None:
    result = perfprobe(
        "infer",
        "-m",
        "identity",
        "-i",
        "grpc",
        "-u",
        server.grpc_url,
        "--streaming",
        "--shape",
        "INPUT0:6",
        "--input-data",
        "zero",
    )
    assert result.returncode == 0, result.stderr
    assert "OUTPUT0: FP32 shape=[6] first=[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]" in result.stdout


def test_describe_and_models(server) -> None:
    described = perfprobe("describe", "-m", "resnet50", "-u", server.http_url)
    assert described.returncode == 0, described.stderr
    assert re.search(r"max_batch_size\s+32", described.stdout)
    assert re.search(r"input\s+input\s+FP32\s+\[3, 224, 224\]\s+NCHW", described.stdout)
    listed = perfprobe("models", "-i", "grpc", "-u", server.grpc_url)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"simple\s+1\s+READY", listed.stdout)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["infer", "-m", "no_such_model"], exitcodes.SERVER_ERROR, "no_such_model"),
        (["infer", "-m", "identity"], exitcodes.USAGE, "--shape INPUT0"),
        (["infer", "-m", "identity", "--shape", "INPUT0:2,3"], exitcodes.USAGE, "does not fit"),
        (["infer", "-m", "simple", "-b", "9"], exitcodes.USAGE, "max_batch_size 8"),
        (["infer", "-m", "resnet50", "NOFILE"], exitcodes.USAGE, "no such image"),
        (["infer", "-m", "simple", "--streaming"], exitcodes.USAGE, "needs gRPC"),
        (["infer", "-m", "simple", "--mode", "x"], exitcodes.USAGE, "unrecognized arguments"),
        (["infer"], exitcodes.USAGE, "-m/--model"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code(server, args: list[str], code: int, message: str) -> None:
    result = perfprobe(*args, "-u", server.http_url)
    assert result.returncode == code, result.stderr
    assert message in _one_error_line(result)


def test_unreadable_image(server, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    result = perfprobe("infer", "-m", "resnet50", "-u", server.http_url, str(broken))
    assert result.returncode == exitcodes.USAGE
    assert "cannot read image" in _one_error_line(result)


def test_unreachable_server(protocol: str) -> None:
    from perfprobe.server.launcher import free_ports

    (port,) = free_ports(1)
    result = perfprobe("describe", "-m", "simple", "-i", protocol, "-u", f"127.0.0.1:{port}")
    assert result.returncode == exitcodes.SERVER_UNREACHABLE, result.stderr
    _one_error_line(result)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_infer_through_system_shared_memory_matches_the_wire(server, jpeg: Path, protocol: str) -> None:
    base = ["infer", "-i", protocol, "-u", server.url(protocol)]
    for args in (["-m", "simple"], ["-m", "resnet50", "-c", "3", str(jpeg)]):
        wire = perfprobe(*base, *args)
        shm = perfprobe(*base, *args, "--shared-memory", "system")
        assert wire.returncode == 0 and shm.returncode == 0, shm.stderr
        assert shm.stdout == wire.stdout
        assert own_segments(shm.pid) == []


def test_infer_cuda_shared_memory_refuses_without_a_device(server) -> None:
    from perfprobe.shm.cuda import CudaUnavailable, require_device

    try:
        require_device(0)
    except CudaUnavailable:
        pass
    else:
        pytest.skip("this machine has a CUDA device: the refusal path cannot be shown")
    result = perfprobe("infer", "-m", "simple", "-u", server.http_url, "--shared-memory", "cuda")
    assert result.returncode == exitcodes.SERVER_UNAVAILABLE
    assert _one_error_line(result).startswith("perfprobe: error: CUDA shared memory needs a CUDA device: ")
