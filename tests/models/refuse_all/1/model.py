"""Test model: every request fails with the reason ``planned refusal: input rejected``."""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse(error=pb_utils.TritonError("planned refusal: input rejected")) for _ in requests
        ]
