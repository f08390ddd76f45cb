"""int8: the quantiser's file runs on both CPU engines near fp32, and ``auto`` follows the documented rule."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from streamsr.backends import create_backend
from streamsr.backends.precision import auto_precision, has_native_bf16, has_vnni, int8_acceptable
from streamsr.errors import ConfigError
from streamsr.types import ModelCard
from tests.test_backends import HAVE, lr_batch, torch_card  # noqa: F401  (torch_card is a fixture)

ZEN4 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})
ZEN3 = frozenset({"avx2", "fma"})
ALDER_LAKE = frozenset({"avx2", "avx_vnni"})


def _card(**kw: object) -> ModelCard:
    base = ModelCard(name="m_x2", arch="espcn", scale=2, colour="y", params=1, macs_per_pixel=1, onnx="m.onnx")
    return dataclasses.replace(base, **kw)


def test_auto_rule_from_cpu_flags() -> None:
    good = _card(onnx_int8="m.int8.onnx", int8_psnr_loss_db=0.05, int8_tolerance_db=0.1)
    lossy = _card(onnx_int8="m.int8.onnx", int8_psnr_loss_db=0.25, int8_tolerance_db=0.1)
    assert has_native_bf16(ZEN4) and has_vnni(ZEN4) and not has_vnni(ZEN3) and has_vnni(ALDER_LAKE)
    assert auto_precision("openvino", good, "fp32", ZEN4) == "bf16"  # native bf16 first
    assert auto_precision("onnxruntime", good, "fp32", ZEN4) == "int8"  # no bf16 in onnxruntime here
    assert auto_precision("openvino", good, "fp32", ALDER_LAKE) == "int8"
    assert auto_precision("openvino", lossy, "fp32", ALDER_LAKE) == "fp32"  # loss above tolerance
    assert auto_precision("openvino", _card(), "fp32", ALDER_LAKE) == "fp32"  # no int8 file
    assert auto_precision("onnxruntime", good, "fp32", ZEN3) == "fp32"  # no VNNI
    assert auto_precision("torch", good, "fp32", ZEN4) == "fp32"
    assert auto_precision("cuda", good, "fp16", ZEN4) == "fp16"  # GPU engines keep their default
    assert int8_acceptable(good) and not int8_acceptable(lossy) and not int8_acceptable(_card())


@pytest.fixture(scope="module")
def int8_card(torch_card: ModelCard, tmp_path_factory: pytest.TempPathFactory) -> ModelCard:  # noqa: F811
    from train.quantize import edge_convs, quantize_onnx

    folder = Path(torch_card.path).parent
    patches = [lr_batch(1, 32, 32, seed=i)[None].astype(np.float32) / 255.0 for i in range(8)]  # (1, 1, 32, 32)
    fp32 = folder / torch_card.onnx
    int8 = folder / "espcn_small_x2.int8.onnx"
    quantize_onnx(fp32, int8, patches, edge_convs(fp32))
    return dataclasses.replace(torch_card, onnx_int8=int8.name)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_int8_file_runs_near_fp32(int8_card: ModelCard, engine: str) -> None:
    if not HAVE[engine]:
        pytest.skip(f"{engine} is not installed")
    batch = lr_batch(2, 37, 53, seed=3)
    with create_backend(engine, int8_card, threads=1, precision="fp32") as b:
        ref = b.run(batch).astype(int)
    with create_backend(engine, int8_card, threads=1, precision="int8") as b:
        out = b.run(batch).astype(int)
    assert out.shape == ref.shape
    diff = np.abs(out - ref)
    assert diff.mean() < 2.0 and diff.max() <= 16, (diff.mean(), diff.max())
    assert diff.mean() > 0  # it is another computation, not the fp32 file again


def test_only_the_inner_convolutions_are_quantised(tmp_path: Path) -> None:
    """The global residual's Add and the pixel shuffle stay float: a uint8 round of the output
    image costs more PSNR than every inner conv together (repsr x2 Set5: 0.24 dB -> 0.16)."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    from streamsr.models import build_model
    from train.export import export_onnx
    from train.quantize import edge_convs, quantize_onnx

    torch.manual_seed(0)
    fp32, int8 = tmp_path / "r.onnx", tmp_path / "r.int8.onnx"
    export_onnx(build_model("repsr", 2, features=8, blocks=2, expansion=0, deploy=True), 1, fp32)
    patches = [lr_batch(1, 32, 32, seed=i)[None].astype(np.float32) / 255.0 for i in range(4)]
    quantize_onnx(fp32, int8, patches, edge_convs(fp32))
    graph = onnx.load(str(int8)).graph
    dequantized = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    fed = {n.op_type for n in graph.node if n.op_type != "QuantizeLinear" and dequantized & set(n.input)}
    assert "Conv" in fed and not fed & {"Add", "DepthToSpace"}, fed  # activations between convs may be fed


def test_int8_without_a_file_is_one_clear_error(torch_card: ModelCard) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="int8"):
        create_backend("onnxruntime", torch_card, threads=1, precision="int8")


def test_qat_simulates_the_int8_files_rounding_and_hands_back_plain_weights() -> None:
    import torch

    from streamsr.models import build_model
    from train.qat import plain_state, simulate_int8

    torch.manual_seed(0)
    model = build_model("espcn", 2, features=(8, 8)).eval()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        exact = model(x)
    inner = simulate_int8(model)
    assert len(inner) == 1 and inner[0] is model.body[2]  # the first and last convs stay float
    model.train()
    with torch.no_grad():
        model(x)  # the observers see a batch
    model.eval()
    with torch.no_grad():
        rounded = model(x)
    diff = (rounded - exact).abs()
    assert 0 < diff.max().item() < 0.05  # rounded, but the same picture
    state = plain_state(model)
    assert set(state) == set(reference)  # no simulation left: it loads into a plain model
    plain = build_model("espcn", 2, features=(8, 8))
    plain.load_state_dict(state)
    assert torch.equal(plain.body[2].weight, reference["body.2.weight"])  # no step taken: unchanged


def test_qat_refuses_a_model_of_another_degradation(torch_card: ModelCard, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """QAT fine-tunes on bicubic LR only; on a CCTV model it would change what the model does."""
    import shutil

    from train.qat import main

    for name in (torch_card.onnx, torch_card.torch_weights):
        shutil.copy(Path(torch_card.path).parent / name, tmp_path / name)
    card_path = tmp_path / "cctv_small_x2.json"
    dataclasses.replace(torch_card, training={"degradation": "cctv"}).save(card_path)
    before = card_path.read_bytes()
    rc = main([str(card_path), "--calib", str(tmp_path), "--eval", str(tmp_path), "--steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "'cctv' degradation" in err[0] and "train.quantize" in err[0], err
    assert card_path.read_bytes() == before and not list(tmp_path.glob("*.int8.onnx"))
