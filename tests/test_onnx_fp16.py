"""fp16 ONNX conversion: the converted model is fp16 throughout and close to fp32."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from streamsr.onnx_fp16 import convert_file, max_abs_error  # noqa: E402
from tiny_model import write_tiny_model  # noqa: E402


def test_fp16_model_is_half_precision_and_close(tmp_path):
    card = write_tiny_model(tmp_path, scale=2, nearest=True)
    src = card.file(card.onnx)
    dst = convert_file(src, tmp_path / "tiny_x2.fp16.onnx")
    model = onnx.load(str(dst))
    assert all(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    sample = np.random.default_rng(0).random((1, 1, 40, 56), dtype=np.float32)
    err = max_abs_error(src, dst, sample)
    # fp16 has 11 significant bits: the error of a few accumulated products is ~1e-3 of the range,
    # under half a grey level (0.5 / 255 = 2e-3), and never zero (it really ran in fp16).
    assert 0 < err < 2e-3


def test_resize_scales_stay_float32(tmp_path):
    """ONNX types Resize's roi and scales as float32 only: halving them makes an invalid model
    (it broke SRCNN's fp16 export). The data path still runs in fp16."""
    from onnx import TensorProto, helper, numpy_helper

    from streamsr.onnx_fp16 import convert_model

    weight = numpy_helper.from_array(np.full((1, 1, 3, 3), 1 / 9, np.float32), "w")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    graph = helper.make_graph(
        [
            helper.make_node("Resize", ["x", "", "scales"], ["up"], mode="cubic"),
            helper.make_node("Conv", ["up", "w"], ["y"], pads=[1, 1, 1, 1]),
        ],
        "resize_then_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, None, None])],
        [weight, scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    src = tmp_path / "resize.onnx"
    onnx.save(model, str(src))
    half = convert_model(model)
    types = {t.name: t.data_type for t in half.graph.initializer}
    assert types == {"w": TensorProto.FLOAT16, "scales": TensorProto.FLOAT}
    dst = tmp_path / "resize.fp16.onnx"
    onnx.save(half, str(dst))
    sample = np.random.default_rng(1).random((1, 1, 12, 16), dtype=np.float32)
    assert 0 < max_abs_error(src, dst, sample) < 2e-3
