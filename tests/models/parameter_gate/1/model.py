"""Test model: answers only requests whose parameters say gate "open", level 3, strict true and scale 0.5."""

import json

import triton_python_backend_utils as pb_utils

EXPECTED = {"gate": "open", "level": 3, "strict": True, "scale": 0.5}


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            given = json.loads(request.parameters() or "{}")
            wrong = {
                key: given.get(key)
                for key, value in EXPECTED.items()
                if given.get(key) != value or type(given.get(key)) is not type(value)
            }
            if wrong:
                responses.append(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(f"parameters not as expected: {wrong}"))
                )
                continue
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", data)]))
        return responses
