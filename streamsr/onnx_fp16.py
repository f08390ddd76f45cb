"""Convert a float32 ONNX model to float16 (weights, activations and I/O) and measure the cost.

TensorRT 11 builds strongly typed networks, where "fp16" means an fp16 ONNX; ONNX Runtime
and OpenVINO run the same file on the CPU, which is how its error is measured here.
Needs the ``onnx`` package (extras ``torch``, ``train`` or ``tensorrt``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

FP16_MAX = float(np.finfo(np.float16).max)

# Inputs that ONNX types as float32 whatever the data type: (op, input positions).
FLOAT32_ONLY_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}


def _float32_only_names(graph) -> set[str]:
    """Names of the tensors that feed a float32-only input (Resize's roi and scales, say)."""
    return {
        node.input[i]
        for node in graph.node
        for i in FLOAT32_ONLY_INPUTS.get(node.op_type, ())
        if i < len(node.input) and node.input[i]
    }


def convert_model(model):  # onnx.ModelProto -> onnx.ModelProto
    """A float16 copy of ``model``: every float32 tensor, input, output and value becomes float16,
    except the tensors that ONNX requires in float32 (Resize's roi and scales)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    keep = _float32_only_names(graph)

    def half(tensor):
        if tensor.data_type != TensorProto.FLOAT or tensor.name in keep:
            return tensor
        array = np.clip(numpy_helper.to_array(tensor), -FP16_MAX, FP16_MAX).astype(np.float16)
        return numpy_helper.from_array(array, tensor.name)

    for i, init in enumerate(graph.initializer):
        graph.initializer[i].CopyFrom(half(init))
    for node in graph.node:
        kept_constant = node.op_type == "Constant" and node.output[0] in keep
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and not kept_constant:
                attr.t.CopyFrom(half(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT and value.name not in keep:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    onnx.checker.check_model(model)
    return model


def convert_file(src: Path, dst: Path) -> Path:
    import onnx

    onnx.save(convert_model(onnx.load(str(src))), str(dst))
    return dst


def max_abs_error(fp32_path: Path, fp16_path: Path, sample: np.ndarray) -> float:
    """Largest |fp16 - fp32| output difference on ``sample`` (float32 NCHW in [0, 1]), ORT on the CPU."""
    import onnxruntime as ort

    def run(path: Path, x: np.ndarray) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0].astype(np.float32)

    ref = run(fp32_path, sample.astype(np.float32))
    half = run(fp16_path, sample.astype(np.float16))
    return float(np.abs(half - ref).max())
