"""Test model: for COUNT=n, send n responses (INDEX 0..n-1), then the final flag alone."""

import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            count = int(pb_utils.get_input_tensor_by_name(request, "COUNT").as_numpy()[0])
            delay = pb_utils.get_input_tensor_by_name(request, "DELAY_MS")
            delay_s = float(delay.as_numpy()[0]) / 1000.0 if delay is not None else 0.0
            for index in range(count):
                if delay_s:
                    time.sleep(delay_s)
                out = pb_utils.Tensor("INDEX", np.array([index], dtype=np.int32))
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
