"""Seldon MLServer serving `simple` (INT32 INPUT0 + INPUT1 -> OUTPUT0 sum, OUTPUT1 difference).

Its metadata lists no inputs or outputs (model-settings.json declares none); every request served
is counted (``counting.py``, found through PYTHONPATH).
"""

from __future__ import annotations

import numpy as np
from counting import ServedCounter
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SimpleModel(MLModel):
    async def load(self) -> bool:
        self.counter = ServedCounter()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        tensors = {item.name: NumpyCodec.decode_input(item) for item in payload.inputs}
        first, second = tensors["INPUT0"], tensors["INPUT1"]
        outputs = [
            NumpyCodec.encode_output(name, value.astype(np.int32))
            for name, value in (("OUTPUT0", first + second), ("OUTPUT1", first - second))
        ]
        response = InferenceResponse(model_name=self.name, id=payload.id, outputs=outputs)
        self.counter.add()
        return response
