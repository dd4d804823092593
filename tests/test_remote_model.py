"""RemoteModel: a served model called like a local function."""

from __future__ import annotations

import numpy as np
import pytest

from perfprobe.client import InferenceServerError, RemoteModel
from perfprobe.client.remote import parse_model_url


def test_url_parsing() -> None:
    assert parse_model_url("http://localhost:8000/simple") == ("http", "localhost:8000", "simple", False, "")
    assert parse_model_url("grpcs://h:9/resnet50/versions/2") == ("grpc", "h:9", "resnet50", True, "2")
    for bad in ("ftp://h/simple", "http://h:1", "http://h:1/a/b"):
        with pytest.raises(ValueError):
            parse_model_url(bad)


def test_simple_sum_and_difference(server, protocol: str) -> None:
    with RemoteModel(f"{protocol}://{server.url(protocol)}/simple") as simple:
        a = np.arange(16)  # int64, no batch dim: cast to INT32 and batched for us
        b = np.ones(16, dtype=np.float64)
        out = simple(a, INPUT1=b)
        np.testing.assert_array_equal(out["OUTPUT0"], a + 1)
        np.testing.assert_array_equal(out["OUTPUT1"], a - 1)
        assert out["OUTPUT0"].dtype == np.int32 and out["OUTPUT0"].shape == (16,)
        batch = simple(np.zeros((4, 16)), np.full((4, 16), 2))
        assert batch["OUTPUT1"].shape == (4, 16) and (batch["OUTPUT1"] == -2).all()
        with pytest.raises(TypeError, match="missing"):
            simple(a)
        with pytest.raises(TypeError, match="no input"):
            simple(a, b, BOGUS=a)


def test_resnet50_gives_a_probability_distribution(server, protocol: str) -> None:
    with RemoteModel(f"{protocol}://{server.url(protocol)}/resnet50") as resnet:
        image = np.random.default_rng(0).standard_normal((3, 224, 224))
        probabilities = resnet(image)["probabilities"]
        assert probabilities.shape == (1000,)
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert (probabilities >= 0).all()


def test_unknown_model_fails_at_construction(server) -> None:
    with pytest.raises(InferenceServerError):
        RemoteModel(f"http://{server.http_url}/no_such_model")
