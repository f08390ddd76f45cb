"""A small random-weight ESPCN-shaped model written with the onnx helpers (no torch needed)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from streamsr.types import ModelCard


def write_tiny_model(
    folder: Path, scale: int = 2, features: int = 8, seed: int = 0, name: str = "tiny", nearest: bool = False,
    noise: float = 0.1,
) -> ModelCard:
    """``folder/<name>_x<scale>.onnx`` and its card: conv5x5 -> relu -> conv3x3 -> depth-to-space.

    The last conv is biased towards the bicubic-like mean of the input so that outputs are
    not saturated, which keeps parity checks meaningful.

    ``nearest=True`` makes a content-preserving model: feature 0 passes the input through and
    is copied to every sub-pixel (a nearest-neighbour upscale), plus a small random term from
    the other features (a few grey levels), so pictures, and the index codes drawn into test
    clips, can be recognised in the output. ``noise=0`` drops the random term: the output is
    then exactly the nearest-neighbour upscale of the input (float in, float out).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((features, 1, 5, 5)) * 0.2).astype(np.float32)
    b1 = (rng.standard_normal(features) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((scale * scale, features, 3, 3)) * 0.05).astype(np.float32)
    b2 = np.full(scale * scale, 0.2, dtype=np.float32)
    if nearest:
        w1[0] = 0.0
        w1[0, 0, 2, 2] = 1.0
        b1[0] = 0.0
        w2 *= noise
        w2[:, 0] = 0.0
        w2[:, 0, 1, 1] = 1.0
        b2[:] = 0.0
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("Conv", ["lr", "w1", "b1"], ["h1"], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2", "b2"], ["h2"], pads=[1, 1, 1, 1]),
        helper.make_node("DepthToSpace", ["h2"], ["sr"], blocksize=scale, mode="CRD"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["n", 1, "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    stem = f"{name}_x{scale}"
    onnx_path = folder / f"{stem}.onnx"
    onnx.save(model, onnx_path)
    macs = 25 * features + 9 * features * scale * scale
    card = ModelCard(
        name=stem, arch=name, scale=scale, colour="y", params=int(sum(a.size for a in (w1, b1, w2, b2))),
        macs_per_pixel=macs, onnx=onnx_path.name, onnx_sha256=hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        training={"data": "random weights for tests"},
    )
    (folder / f"{stem}.json").write_text(card.to_json())
    return ModelCard.load(folder / f"{stem}.json")
