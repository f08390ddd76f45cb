"""Export: ONNX Runtime matches torch for every registered model, fp16 copy and card fields."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from streamsr.errors import InputError
from streamsr.models import build_model, macs_per_pixel, model_names
from streamsr.types import ModelCard
from train.config import load_config
from train.export import check_onnx, deploy_form, export_fp16, export_onnx, export_run, sample_patch
from train.loop import train

TINY = {
    "espcn": {"features": [8, 4]},
    "srcnn": {"features": [8, 4]},
    "wresnet": {"features": 4},
    "edsr": {"features": 8, "blocks": 2},
    "repsr": {"features": 8, "blocks": 2, "expansion": 2},
    "safmn": {"dim": 8, "blocks": 2, "ffn_hidden": 16},
}
REPARAMETERISED = {"repsr", "safmn"}  # deploy_form collapses them and says so in their kwargs


def test_every_registered_model_has_a_tiny_config() -> None:
    assert set(model_names()) <= set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_onnx_matches_torch_dynamic_shapes(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = build_model(name, 3, **TINY[name]).eval()
    with torch.no_grad():
        for p in model.parameters():  # beyond the init, so that every branch matters
            p.add_(torch.randn_like(p) * 0.05)
    model, kwargs = deploy_form(model, TINY[name])
    assert kwargs.get("deploy", False) == (name in REPARAMETERISED)
    path = tmp_path / f"{name}.onnx"
    export_onnx(model, 1, path)
    assert check_onnx(model, 1, path) < 1e-4  # (1, 1, 37, 53) and (2, 1, 24, 17)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for shape in [(2, 1, 19, 26), (1, 1, 40, 12)]:
        x = rng.random(shape, dtype=np.float32)
        got = sess.run(["sr"], {"lr": x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert got.shape == (shape[0], 1, shape[2] * 3, shape[3] * 3)
        assert np.abs(got - ref).max() < 1e-4
    fp16_path, err = export_fp16(path, rng.random((1, 1, 20, 20), dtype=np.float32))
    assert fp16_path.name == f"{name}.fp16.onnx" and fp16_path.exists()
    assert 0.0 < err < 0.05


def _images(folder: Path, n: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, (size // 4, size // 4, 3)).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC))


def test_export_run_repsr_deployed_card_and_fp16(tmp_path: Path) -> None:
    _images(tmp_path / "train", 2, 48, 0)
    _images(tmp_path / "val", 1, 40, 1)
    cfg_dict = {
        "scale": 2,
        "model": {"name": "repsr", "kwargs": TINY["repsr"]},
        "data": {"train_dirs": [str(tmp_path / "train")], "val_dir": str(tmp_path / "val"), "patch_size": 8, "batch_size": 2},
        "degradation": "cctv",
        "schedule": {"steps": 2},
        "threads": 1,
        "val_every": 2,
    }
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg_dict))
    cfg = load_config(cfg_path)
    train(cfg, tmp_path / "run", progress=False)
    card = export_run(cfg, cfg_path, tmp_path / "run", tmp_path / "engines", [tmp_path / "val"])
    loaded = ModelCard.load(tmp_path / "engines" / "repsr_x2.json")
    assert loaded == card
    assert loaded.arch_kwargs == {**TINY["repsr"], "deploy": True}
    assert loaded.onnx_fp16 == "repsr_x2.fp16.onnx" and loaded.file(loaded.onnx_fp16).exists()
    assert loaded.fp16_max_abs_error is not None and 0.0 < loaded.fp16_max_abs_error < 0.05
    assert loaded.training["degradation"] == "cctv" and len(loaded.training["config_sha256"]) == 64
    assert loaded.metrics["val"]["images"] == 1
    # The runtime's torch backend rebuilds the collapsed network from the card alone.
    deployed = build_model(loaded.arch, loaded.scale, **loaded.arch_kwargs)
    deployed.load_state_dict(torch.load(loaded.file(loaded.torch_weights), weights_only=True))
    assert loaded.macs_per_pixel == macs_per_pixel(deployed, 2) == 9 * (8 + 2 * 64 + 8 * 4)
    from streamsr.backends.torch_backend import TorchBackend

    x = sample_patch(tmp_path / "val", 2)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(loaded.file(loaded.onnx)), providers=["CPUExecutionProvider"])
    backend = TorchBackend(loaded, threads=1)
    try:
        assert np.abs(backend.infer(x) - sess.run(None, {"lr": x})[0]).max() < 1e-4
    finally:
        backend.close()


def test_export_refuses_a_config_the_run_was_not_trained_with(tmp_path: Path) -> None:
    _images(tmp_path / "train", 2, 48, 0)
    _images(tmp_path / "val", 1, 40, 1)
    cfg_dict = {
        "scale": 2,
        "model": {"name": "srcnn", "kwargs": {**TINY["srcnn"], "residual": True}},
        "data": {"train_dirs": [str(tmp_path / "train")], "val_dir": str(tmp_path / "val"), "patch_size": 8, "batch_size": 2},
        "schedule": {"steps": 1},
        "threads": 1,
    }
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg_dict))
    train(load_config(run / "config.yaml"), run, progress=False)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**cfg_dict, "model": {"name": "srcnn", "kwargs": {**TINY["srcnn"], "residual": False}}}))
    with pytest.raises(InputError, match="trained with another model"):
        export_run(load_config(other), other, run, tmp_path / "engines")
    card = export_run(load_config(run / "config.yaml"), run / "config.yaml", run, tmp_path / "engines")
    assert card.arch_kwargs["residual"] is True
