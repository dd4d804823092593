"""perfprobe's own KServe v2 / Triton protocol client: HTTP and gRPC behind one interface."""

from perfprobe.client.base import InferenceClient, RequestOptions
from perfprobe.client.errors import InferenceServerError
from perfprobe.client.factory import DEFAULT_URLS, make_client
from perfprobe.client.model import ModelDescription, TensorSpec
from perfprobe.client.remote import RemoteModel
from perfprobe.client.tensors import InferInput, InferResult, RequestedOutput, SharedMemoryRef

__all__ = [
    "DEFAULT_URLS",
    "InferInput",
    "InferResult",
    "InferenceClient",
    "InferenceServerError",
    "ModelDescription",
    "RemoteModel",
    "RequestOptions",
    "RequestedOutput",
    "SharedMemoryRef",
    "TensorSpec",
    "make_client",
]
