"""Test model: echoes INPUT0; every ``stall_every``-th execution first sleeps ``stall_ms``."""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.every = int(params["stall_every"]["string_value"])
        self.stall_s = float(params["stall_ms"]["string_value"]) / 1000.0
        self.executions = 0

    def execute(self, requests):
        self.executions += 1
        if self.executions % self.every == 0:
            time.sleep(self.stall_s)
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]
            )
            for r in requests
        ]
