"""KServe's own ModelServer serving `simple` (INT32 [1,16] INPUT0 + INPUT1 -> OUTPUT0 sum, OUTPUT1 difference).

Run in its own environment (kserve pins numpy 2): ``python kserve_simple.py HTTP_PORT GRPC_PORT``.
Its metadata lists no inputs or outputs, as KServe's default model does; every request served is
counted (``counting.py``).
"""

from __future__ import annotations

import sys

import numpy as np
from counting import ServedCounter
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class SimpleModel(Model):
    def __init__(self) -> None:
        super().__init__("simple")
        self.counter = ServedCounter()
        self.ready = True

    async def predict(self, payload: InferRequest, headers: dict | None = None, response_headers=None) -> InferResponse:
        tensors = {item.name: item.as_numpy() for item in payload.inputs}
        first, second = tensors["INPUT0"], tensors["INPUT1"]
        outputs = []
        for name, value in (("OUTPUT0", first + second), ("OUTPUT1", first - second)):
            output = InferOutput(name=name, shape=list(value.shape), datatype="INT32")
            output.set_data_from_numpy(value.astype(np.int32), binary_data=False)
            outputs.append(output)
        response = InferResponse(model_name=self.name, infer_outputs=outputs, response_id=payload.id or "")
        self.counter.add()
        return response


if __name__ == "__main__":
    http_port, grpc_port = int(sys.argv[1]), int(sys.argv[2])
    ModelServer(http_port=http_port, grpc_port=grpc_port, enable_latency_logging=False).start([SimpleModel()])
