"""Test model: returns the request id, correlation id, flags, timeout and custom parameters it received."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            timeout = request.timeout() if hasattr(request, "timeout") else 0
            outputs = [
                pb_utils.Tensor("REQUEST_ID", np.array([request.request_id().encode()], dtype=object)),
                pb_utils.Tensor("CORRELATION_ID", np.array([request.correlation_id()], dtype=np.uint64)),
                pb_utils.Tensor("FLAGS", np.array([request.flags()], dtype=np.uint32)),
                pb_utils.Tensor("TIMEOUT_US", np.array([timeout], dtype=np.uint64)),
                pb_utils.Tensor("PARAMETERS", np.array([request.parameters().encode()], dtype=object)),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
