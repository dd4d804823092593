"""perfprobe built-in model ``resnet50``: an ONNX ResNet-50 v1.5 executed by onnxruntime.

Requests that the dynamic batcher groups into one execution are run as one batch.
"""

import json
import os

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "0") or 0)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, "input").as_numpy() for r in requests]
        sizes = [len(b) for b in batches]
        joined = np.concatenate(batches) if len(batches) > 1 else batches[0]
        (probabilities,) = self.session.run(None, {self.input_name: joined.astype(np.float32, copy=False)})
        responses = []
        start = 0
        for size in sizes:
            part = probabilities[start : start + size]
            start += size
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("probabilities", part)]))
        return responses
