"""Test model: a running sum of VALUE per sequence (see config.pbtxt), optionally logged per request."""

import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


def _control(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)[0]


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.delay_s = float(params["delay_ms"]["string_value"]) / 1000.0
        log_dir = params["log_dir"]["string_value"]
        # kept open for the model's life, closed in finalize
        self.log = open(os.path.join(log_dir, args["model_name"] + ".log"), "a", buffering=1) if log_dir else None  # noqa: SIM115
        self.sums = {}

    def execute(self, requests):
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self._step(request) for request in requests]

    def _step(self, request):
        start = bool(_control(request, "START"))
        end = bool(_control(request, "END"))
        corrid = request.correlation_id()  # a number or a string, as the client sent it
        value = int(pb_utils.get_input_tensor_by_name(request, "VALUE").as_numpy().reshape(-1)[0])
        refusal = None
        if value < 0:  # a test's way to fail one step inside a sequence
            refusal = f"negative VALUE {value} refused"
        elif not start and corrid not in self.sums:
            refusal = f"sequence {corrid} is unknown: its first request must carry START"
        if refusal is not None:
            if end:
                self.sums.pop(corrid, None)  # the sequence ends even so
            self._log(corrid, start, end, value, None)
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(refusal))
        if start:
            self.sums[corrid] = 0
        self.sums[corrid] += value
        total = self.sums[corrid]
        if end:
            del self.sums[corrid]
        self._log(corrid, start, end, value, total)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("SUM", np.array([total], dtype=np.int32))])

    def _log(self, corrid, start, end, value, total):
        if self.log is not None:
            self.log.write(json.dumps([corrid, start, end, value, total, len(self.sums)]) + "\n")

    def finalize(self):
        if self.log is not None:
            self.log.close()
