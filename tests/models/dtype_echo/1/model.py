"""Test model: OUT_<TYPE> is IN_<TYPE> for every fixed-size datatype."""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import json

        self.names = [item["name"][3:] for item in json.loads(args["model_config"])["input"]]

    def execute(self, requests):
        responses = []
        for request in requests:
            outputs = [
                pb_utils.Tensor("OUT_" + name, pb_utils.get_input_tensor_by_name(request, "IN_" + name).as_numpy())
                for name in self.names
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
