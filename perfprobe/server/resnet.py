"""Build the ResNet-50 v1.5 graph as ONNX with synthetic weights from a fixed seed.

Nothing is downloaded: the architecture is real (stem, 3-4-6-3 bottleneck stages with
the stride on the 3x3 convolution, global pooling, a 1000-way classifier and softmax),
so the compute is a real ResNet-50's, but the weights are random and the classes mean
nothing. The same seed always gives the same file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # bottleneck width, block count
EXPANSION = 4
CLASSES = 1000
IMAGE_SIZE = 224


class _GraphBuilder:
    """Accumulates nodes and initializers with unique names, drawing weights in order."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def constant(self, prefix: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._name(prefix)
        self.initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x: str, c_in: int, c_out: int, kernel: int, stride: int) -> str:
        from onnx import helper

        fan_in = c_in * kernel * kernel
        weight = self.rng.standard_normal((c_out, c_in, kernel, kernel), dtype=np.float32) * np.sqrt(2.0 / fan_in)
        w = self.constant("conv_w", weight)
        out = self._name("conv")
        pad = kernel // 2
        self.nodes.append(
            helper.make_node(
                "Conv", [x, w], [out], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4
            )
        )
        return out

    def batch_norm(self, x: str, channels: int, gamma: float = 1.0) -> str:
        from onnx import helper

        inputs = [
            x,
            self.constant("bn_scale", np.full(channels, gamma)),
            self.constant("bn_bias", np.zeros(channels)),
            self.constant("bn_mean", np.zeros(channels)),
            self.constant("bn_var", np.ones(channels)),
        ]
        out = self._name("bn")
        self.nodes.append(helper.make_node("BatchNormalization", inputs, [out], epsilon=1e-5))
        return out

    def op(self, op_type: str, inputs: list[str], **attributes: object) -> str:
        from onnx import helper

        out = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attributes))
        return out

    def bottleneck(self, x: str, c_in: int, width: int, stride: int) -> str:
        c_out = width * EXPANSION
        y = self.op("Relu", [self.batch_norm(self.conv(x, c_in, width, 1, 1), width)])
        y = self.op("Relu", [self.batch_norm(self.conv(y, width, width, 3, stride), width)])
        # a small last gamma keeps activations bounded through 16 residual additions
        y = self.batch_norm(self.conv(y, width, c_out, 1, 1), c_out, gamma=0.2)
        shortcut = x
        if stride != 1 or c_in != c_out:
            shortcut = self.batch_norm(self.conv(x, c_in, c_out, 1, stride), c_out)
        return self.op("Relu", [self.op("Add", [y, shortcut])])


def build_model(seed: int = 0, opset: int = 17):
    """The ResNet-50 v1.5 ``onnx.ModelProto`` (input ``input`` [N,3,224,224], output ``probabilities``)."""
    from onnx import TensorProto, helper

    graph = _GraphBuilder(seed)
    x = graph.op("Relu", [graph.batch_norm(graph.conv("input", 3, 64, 7, 2), 64)])
    x = graph.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    channels = 64
    for stage, (width, blocks) in enumerate(STAGES):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = graph.bottleneck(x, channels, width, stride)
            channels = width * EXPANSION
    x = graph.op("Flatten", [graph.op("GlobalAveragePool", [x])], axis=1)
    fc_w = graph.rng.standard_normal((CLASSES, channels), dtype=np.float32) * np.sqrt(1.0 / channels)
    logits = graph.op("Gemm", [x, graph.constant("fc_w", fc_w), graph.constant("fc_b", np.zeros(CLASSES))], transB=1)
    graph.nodes.append(helper.make_node("Softmax", [logits], ["probabilities"], axis=1))
    onnx_graph = helper.make_graph(
        graph.nodes,
        "resnet50_v1_5_synthetic",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", CLASSES])],
        graph.initializers,
    )
    model = helper.make_model(
        onnx_graph, producer_name="perfprobe", opset_imports=[helper.make_opsetid("", opset)], ir_version=8
    )
    return model


def ensure_model_file(cache_folder: Path, seed: int = 0, opset: int = 17) -> Path:
    """Build the ONNX file once into ``cache_folder`` and return its path (atomic write)."""
    path = cache_folder / f"resnet50-v1.5-seed{seed}-opset{opset}.onnx"
    if path.exists():
        return path
    cache_folder.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + f".tmp{os.getpid()}")
    staging.write_bytes(build_model(seed, opset).SerializeToString())
    os.replace(staging, path)
    return path


def labels(count: int = CLASSES) -> list[str]:
    """Placeholder class names: the weights are synthetic, so the classes have no meaning."""
    return [f"synthetic_class_{index:04d}" for index in range(count)]
