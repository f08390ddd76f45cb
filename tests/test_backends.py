"""Every installed CPU backend computes the same picture; `auto` and the errors are as documented.

Tolerances (uint8 levels, same input, same weights):
  fp32 vs fp32 (onnxruntime / openvino / torch): max abs difference <= 1 (rounding at .5 only)
  bf16 (openvino, torch; only on CPUs with native bf16):  mean abs <= 1.5, max abs <= 8
"""
from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from streamsr.backends import AUTO_ORDER, choose_auto, create_backend, installed_backends
from streamsr.errors import BackendUnavailable, ConfigError, ModelError
from streamsr.types import ModelCard
from streamsr.zoo import engines_dirs

HAVE = {name: importlib.util.find_spec(name) is not None for name in ("onnxruntime", "openvino", "torch", "onnx")}
REPO_ENGINES = Path(__file__).resolve().parents[1] / "engines"


def lr_batch(n: int = 2, h: int = 37, w: int = 53, seed: int = 0) -> np.ndarray:
    """Smooth content with edges and a little noise, odd sizes on purpose."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(n):
        base = 128 + 70 * np.sin((xx + 2 * i) / 5.0) * np.cos(yy / 7.0)
        base[h // 3: h // 2, w // 4: w // 2] = 230 - 40 * i
        frames.append(base + rng.normal(0, 6, (h, w)))
    return np.clip(frames, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def torch_card(tmp_path_factory) -> ModelCard:
    """A small random-weight ESPCN (the registered architecture) exported to ONNX, with its
    state_dict, so that all three backends run the very same weights."""
    if not (HAVE["torch"] and HAVE["onnx"]):
        pytest.skip("needs torch and onnx to make a model with torch weights")
    import torch

    from streamsr.models import build_model

    folder = tmp_path_factory.mktemp("torch_engines")
    torch.manual_seed(0)
    kwargs = {"features": [12, 8]}
    model = build_model("espcn", 2, **kwargs).eval()
    with torch.no_grad():  # centre the random output on mid-grey so little of it is clipped
        model.body[-1].bias += 0.5
    torch.save(model.state_dict(), folder / "espcn_small_x2.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (torch.rand(1, 1, 16, 16),), str(folder / "espcn_small_x2.onnx"), dynamo=False,
            input_names=["lr"], output_names=["sr"], opset_version=17,
            dynamic_axes={"lr": {0: "n", 2: "h", 3: "w"}, "sr": {0: "n", 2: "H", 3: "W"}},
        )
    card = ModelCard(
        name="espcn_small_x2", arch="espcn", scale=2, colour="y", params=0, macs_per_pixel=0,
        onnx="espcn_small_x2.onnx", arch_kwargs=kwargs, torch_weights="espcn_small_x2.pt",
    )
    (folder / "espcn_small_x2.json").write_text(card.to_json())
    return ModelCard.load(folder / "espcn_small_x2.json")


def shipped_cards() -> list[Path]:
    return sorted(p for p in REPO_ENGINES.glob("*.json")) if REPO_ENGINES.is_dir() else []


def fp32_engines(card: ModelCard) -> list[str]:
    names = [n for n in ("onnxruntime", "openvino") if HAVE[n]]
    if HAVE["torch"] and card.torch_weights and card.file(card.torch_weights).exists():
        names.append("torch")
    return names


def run(engine: str, card: ModelCard, batch: np.ndarray, precision: str = "fp32") -> np.ndarray:
    with create_backend(engine, card, threads=2, precision=precision) as backend:
        return backend.run(batch)


def check_fp32_parity(card: ModelCard, batch: np.ndarray) -> dict[str, np.ndarray]:
    engines = fp32_engines(card)
    if len(engines) < 2:
        pytest.skip(f"only {engines} can run {card.name}: nothing to compare")
    outs = {e: run(e, card, batch) for e in engines}
    ref = outs[engines[0]]
    n, h, w = batch.shape
    assert ref.shape == (n, h * card.scale, w * card.scale) and ref.dtype == np.uint8
    # the comparison means something only if the output is a picture, not a clipped flat field
    assert ref.std() > 10 and ((ref == 0) | (ref == 255)).mean() < 0.2
    for engine, out in outs.items():
        assert out.shape == ref.shape and out.dtype == np.uint8, engine
        diff = np.abs(out.astype(int) - ref.astype(int))
        assert diff.max() <= 1, f"{engine} vs {engines[0]}: max {diff.max()}, mean {diff.mean():.3f}"
    return outs


def test_fp32_parity_all_backends(torch_card):
    outs = check_fp32_parity(torch_card, lr_batch())
    assert "torch" in outs or not HAVE["torch"]


def test_fp32_parity_tiny_onnx_model(models_dir):
    """The onnx-helper model (no torch weights): onnxruntime and openvino agree."""
    card = ModelCard.load(models_dir / "tiny_x3.json")
    check_fp32_parity(card, lr_batch(n=3, h=21, w=30, seed=1))


@pytest.mark.parametrize("card_path", shipped_cards() or [None], ids=lambda p: p.stem if p else "none")
def test_fp32_parity_shipped_models(card_path):
    if card_path is None:
        pytest.skip("no shipped models in engines/ yet")
    card = ModelCard.load(card_path)
    if not card.file(card.onnx).exists():
        pytest.skip(f"{card.onnx} not present")
    check_fp32_parity(card, lr_batch(n=1, h=45, w=61))


def bf16_engines() -> list[str]:
    names = []
    if HAVE["openvino"]:
        from streamsr.backends.openvino_backend import cpu_supports

        if cpu_supports("bf16"):
            names.append("openvino")
    if HAVE["torch"]:
        import torch

        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            names.append("torch")
    return names


@pytest.mark.parametrize("engine", ["openvino", "torch"])
def test_bf16_close_to_fp32(torch_card, engine):
    if engine not in bf16_engines():
        pytest.skip(f"{engine} has no native bf16 on this CPU (or is not installed)")
    batch = lr_batch()
    ref = run("onnxruntime" if HAVE["onnxruntime"] else engine, torch_card, batch)
    out = run(engine, torch_card, batch, precision="bf16")
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.mean() <= 1.5 and diff.max() <= 8, f"mean {diff.mean():.3f}, max {diff.max()}"


@pytest.mark.skipif(not HAVE["openvino"], reason="openvino not installed")
def test_openvino_handles_changing_shapes(models_dir):
    """OpenVINO compiles per input shape; a second shape and the first again still work."""
    card = ModelCard.load(models_dir / "tiny_x2.json")
    with create_backend("openvino", card, threads=1) as ov_backend, create_backend("onnxruntime", card, threads=1) as ort:
        for batch in (lr_batch(1, 20, 30), lr_batch(2, 31, 17), lr_batch(1, 20, 30, seed=2)):
            assert np.abs(ov_backend.run(batch).astype(int) - ort.run(batch).astype(int)).max() <= 1


# -- auto -------------------------------------------------------------------------------------
def card_with(torch_weights: str | None) -> ModelCard:
    return ModelCard(name="m_x2", arch="espcn", scale=2, colour="y", params=1, macs_per_pixel=1,
                     onnx="m_x2.onnx", torch_weights=torch_weights)


@pytest.mark.parametrize(
    "installed, weights, want",
    [
        (["onnxruntime", "openvino", "torch"], "m.pt", "openvino"),
        (["torch", "onnxruntime"], "m.pt", "onnxruntime"),
        (["onnxruntime"], None, "onnxruntime"),
        (["openvino"], None, "openvino"),
        (["torch"], "m.pt", "torch"),
        (["torch", "openvino"], None, "openvino"),
        (["tensorrt", "cuda", "openvino", "onnxruntime", "torch"], "m.pt", "tensorrt"),
        (["cuda", "openvino", "onnxruntime", "torch"], "m.pt", "cuda"),
        (["cuda", "onnxruntime", "torch"], None, "onnxruntime"),  # cuda needs torch weights
        (["tensorrt", "onnxruntime"], None, "tensorrt"),  # tensorrt builds from the ONNX alone
    ],
)
def test_auto_preference(installed, weights, want):
    assert AUTO_ORDER == ("tensorrt", "cuda", "openvino", "onnxruntime", "torch")
    assert choose_auto(installed, card_with(weights)) == want


def test_gpu_engines_are_not_installed_without_a_gpu(monkeypatch):
    import streamsr.backends as backends

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(backends, "cuda_visible", lambda: False)
    assert installed_backends() == ["onnxruntime", "openvino", "torch"]
    monkeypatch.setattr(backends, "cuda_visible", lambda: True)
    assert installed_backends() == ["onnxruntime", "openvino", "torch", "cuda", "tensorrt"]


@pytest.mark.parametrize("installed", [[], ["torch"]])
def test_auto_with_nothing_usable(installed):
    """torch alone cannot run a model that ships no torch weights."""
    with pytest.raises(ConfigError, match="no inference engine"):
        choose_auto(installed, card_with(None))


def test_installed_backends_follows_find_spec(monkeypatch):
    present = {"onnxruntime"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in present else None)
    assert installed_backends() == ["onnxruntime"]


def test_unknown_engine(models_dir):
    card = ModelCard.load(models_dir / "tiny_x2.json")
    with pytest.raises(ConfigError, match="unknown engine 'tensorflow'.*onnxruntime"):
        create_backend("tensorflow", card)


@pytest.mark.parametrize("engine, package", [("onnxruntime", "onnxruntime"), ("openvino", "openvino"),
                                             ("torch", "torch")])
def test_missing_package_is_backend_unavailable(torch_card, monkeypatch, engine, package):
    monkeypatch.setitem(sys.modules, package, None)  # import now raises ImportError
    with pytest.raises(BackendUnavailable, match=f"{package} is not installed.*pip install"):
        create_backend(engine, torch_card)


def test_missing_package_through_the_cli(models_dir, run_cli, monkeypatch, tmp_path):
    import cv2

    monkeypatch.setitem(sys.modules, "openvino", None)
    cv2.imwrite(str(tmp_path / "a.png"), np.full((16, 16, 3), 90, np.uint8))
    r = run_cli("enhance", tmp_path / "a.png", "-o", tmp_path / "b.png",
                "--model", models_dir / "tiny_x2.json", "--engine", "openvino")
    assert r.code == BackendUnavailable.exit_code == 4
    assert r.err_lines == ["streamsr: error: openvino is not installed (pip install 'streamsr[openvino]')"]
    assert not (tmp_path / "b.png").exists()


@pytest.mark.parametrize("engine, precision", [("onnxruntime", "bf16"), ("torch", "fp16")])
def test_unsupported_precision(torch_card, engine, precision):
    if not HAVE[engine]:
        pytest.skip(f"{engine} not installed")
    with pytest.raises(ConfigError, match=precision):
        create_backend(engine, torch_card, precision=precision)


def test_torch_without_weights_is_a_model_error(models_dir):
    if not HAVE["torch"]:
        pytest.skip("torch not installed")
    with pytest.raises(ModelError, match="no torch weights"):
        create_backend("torch", ModelCard.load(models_dir / "tiny_x2.json"))


def test_card_file_is_json_and_round_trips(torch_card):
    data = json.loads(torch_card.path.read_text())
    assert data["torch_weights"] == "espcn_small_x2.pt"
    assert ModelCard.load(torch_card.path) == torch_card


def test_engines_dir_from_environment(models_dir, monkeypatch):
    monkeypatch.setenv("STREAMSR_ENGINES", str(models_dir))
    assert engines_dirs()[0] == models_dir
    from streamsr.zoo import resolve_model

    assert resolve_model("near", 3).name == "near_x3"
    with pytest.raises(ModelError, match="upscales x2"):
        resolve_model(str(models_dir / "near_x2.json"), 3)
