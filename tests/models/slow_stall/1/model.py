"""Test model: echoes INPUT0 after ``base_ms``; every ``stall_every``-th execution adds ``stall_ms``.

So no honest latency is below ``base_ms``, and with a request timeout between the two a known
share of requests must time out.
"""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.base_s = float(params["base_ms"]["string_value"]) / 1000.0
        self.every = int(params["stall_every"]["string_value"])
        self.stall_s = float(params["stall_ms"]["string_value"]) / 1000.0
        self.executions = 0

    def execute(self, requests):
        self.executions += 1
        time.sleep(self.base_s + (self.stall_s if self.executions % self.every == 0 else 0.0))
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]
            )
            for r in requests
        ]
