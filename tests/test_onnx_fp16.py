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
