from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamsr import evaluate
from streamsr.commands import eval as eval_command
from streamsr.errors import InputError, ModelError
from streamsr.resize import imresize


def _images(folder: Path, n: int = 2, size: int = 48) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (size // 4, size // 4, 3)).astype(np.uint8)
        cv2.imwrite(str(folder / f"im{i}.png"), cv2.resize(small, (size + i, size), interpolation=cv2.INTER_CUBIC))
    cv2.imwrite(str(folder / "grey.png"), np.tile(np.arange(size, dtype=np.uint8) * 5, (size, 1)))
    (folder / "notes.txt").write_text("not an image")
    return folder


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    eval_command.add_arguments(p)
    return p.parse_args(list(argv))


def test_prepare_follows_the_protocol() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (50, 47, 3), dtype=np.uint8)
    ev = evaluate.prepare(img, 3)
    assert ev.hr_y.shape == (48, 45) and ev.lr_y.shape == (16, 15) and ev.bicubic_y.shape == (48, 45)
    assert ev.lr_y.dtype == np.float32 and 0 <= ev.lr_y.min() and ev.lr_y.max() <= 1
    # LR luma is the rounded Y of the uint8 RGB downscale
    lr = evaluate.to_uint8(imresize(img[:48, :45], 1 / 3))
    y = np.round(16 + (65.481 * lr[..., 0] + 128.553 * lr[..., 1] + 24.966 * lr[..., 2]) / 255)
    np.testing.assert_allclose(ev.lr_y * 255, y, atol=1e-4)
    with pytest.raises(InputError, match="too small"):
        evaluate.prepare(img[:15, :15], 3)


def test_perfect_upscaler_scores_infinite() -> None:
    rng = np.random.default_rng(2)
    ev = evaluate.prepare(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), 2)
    res = evaluate.evaluate_images([ev], 2, lambda lr: ev.hr_y / 255.0)
    assert res["psnr"] == float("inf") and res["ssim"] == pytest.approx(1.0)
    assert res["bicubic_psnr"] < 60


def test_run_bicubic_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _images(tmp_path / "Tiny")
    out = tmp_path / "res.json"
    assert eval_command.run(_args("--model", "bicubic", "--scale", "2", "--data", str(data), "--json", str(out))) == 0
    text = capsys.readouterr().out
    assert "Tiny" in text and "bicubic" in text
    res = json.loads(out.read_text())
    assert res["models"] == [] and res["datasets"]["Tiny"]["none"]["images"] == 3
    assert 20 < res["datasets"]["Tiny"]["none"]["bicubic"]["psnr"] < 80


def test_run_model_through_onnxruntime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    from streamsr.models import build_model
    from streamsr.types import ModelCard
    from train.export import export_onnx

    torch.manual_seed(0)
    model = build_model("espcn", 2, features=(4, 4))
    engines = tmp_path / "engines"
    engines.mkdir()
    export_onnx(model, 1, engines / "toy_x2.onnx")
    card = ModelCard(name="toy_x2", arch="espcn", scale=2, colour="y", params=1, macs_per_pixel=1, onnx="toy_x2.onnx")
    (engines / "toy_x2.json").write_text(card.to_json())
    data = _images(tmp_path / "Tiny")
    out = tmp_path / "r.json"
    assert eval_command.run(_args("--model", str(engines / "toy_x2.json"), "--scale", "2", "--data", str(data), "--json", str(out))) == 0
    res = json.loads(out.read_text())["datasets"]["Tiny"]["none"]["toy_x2"]
    assert np.isfinite(res["psnr"]) and set(res["per_image"]) == {"im0.png", "im1.png", "grey.png"}
    with pytest.raises(ModelError):
        eval_command.run(_args("--model", str(engines / "toy_x2.json"), "--scale", "3", "--data", str(data)))


def test_bad_inputs_raise_streamsr_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        eval_command.run(_args("--model", "bicubic", "--data", str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        eval_command.run(_args("--model", "bicubic", "--data", str(tmp_path / "empty")))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read"):
        eval_command.run(_args("--model", "bicubic", "--data", str(tmp_path / "bad")))
    with pytest.raises(ModelError):
        eval_command.run(_args("--model", "nosuchmodel", "--data", str(tmp_path / "bad")))


def _textured(folder: Path, n: int = 2, size: int = 72) -> Path:
    """Smooth random texture: compressible like a photo, so codecs behave as on real images."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(n):
        small = rng.integers(0, 256, (size // 6, size // 6, 3)).astype(np.uint8)
        cv2.imwrite(str(folder / f"t{i}.png"), cv2.resize(small, (size + 2 * i, size), interpolation=cv2.INTER_CUBIC))
    return folder


@pytest.mark.parametrize("spec", ["jpeg:20", "h264:40", "hevc:40"])
def test_compressed_lr_keeps_hr_and_hurts_bicubic(tmp_path: Path, spec: str) -> None:
    from streamsr.lr_degrade import CLIP_FRAMES, LRDegradation

    data = _textured(tmp_path / "T")
    clean = evaluate.load_dataset(data, 2)
    dirty = evaluate.load_dataset(data, 2, LRDegradation.parse(spec))
    clip = not spec.startswith("jpeg")
    assert len(dirty) == (2 * CLIP_FRAMES if clip else 2)
    for im in dirty:  # every LR (frame) stays aligned with its HR crop
        assert im.hr_y.shape == (im.lr_y.shape[0] * 2, im.lr_y.shape[1] * 2)
    if clip:  # the first frame's HR is the top-left crop of the clean HR, the last one moves by 2 * 7
        first, last = dirty[0], dirty[CLIP_FRAMES - 1]
        h, w = first.hr_y.shape
        assert np.array_equal(first.hr_y, clean[0].hr_y[:h, :w])
        assert np.array_equal(last.hr_y, clean[0].hr_y[14 : 14 + h, 14 : 14 + w])
    else:
        assert np.array_equal(dirty[0].hr_y, clean[0].hr_y)
    assert evaluate.evaluate_images(dirty, 2)["bicubic_psnr"] < evaluate.evaluate_images(clean, 2)["bicubic_psnr"] - 0.3
    qp = evaluate.mean_qp(dirty)  # the clip's quantiser, where the decoder tells it (H.264)
    assert (qp is not None and 30 < qp < 51) if spec.startswith("h264") else qp is None


def test_lossless_clip_reproduces_the_protocol_luma(tmp_path: Path) -> None:
    from streamsr.lr_degrade import LRDegradation

    data = _textured(tmp_path / "T", n=1)
    clean = evaluate.load_dataset(data, 2)[0]
    frames = evaluate.load_dataset(data, 2, LRDegradation.parse("h264:0"))  # CRF 0: lossless
    h, w = frames[0].lr_y.shape
    assert np.array_equal(frames[0].lr_y, clean.lr_y[:h, :w])
    assert np.array_equal(frames[3].lr_y, clean.lr_y[3 : 3 + h, 3 : 3 + w])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to compare")
def test_h264_clips_do_not_depend_on_the_cpu_count(tmp_path: Path) -> None:
    # x264 sizes its threads (and slices) from the CPUs it may use; the protocol's LR must not
    from streamsr.lr_degrade import LRDegradation

    data = _textured(tmp_path / "T", n=1, size=480)
    cpus = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(cpus)})
        one = evaluate.load_dataset(data, 2, LRDegradation.parse("h264:28"))
    finally:
        os.sched_setaffinity(0, cpus)
    many = evaluate.load_dataset(data, 2, LRDegradation.parse("h264:28"))
    assert all(np.array_equal(a.lr_y, b.lr_y) for a, b in zip(one, many, strict=True))


def test_degradation_specs() -> None:
    from streamsr.errors import ConfigError
    from streamsr.lr_degrade import LRDegradation

    assert str(LRDegradation.parse("JPEG:40")) == "jpeg:40" and str(LRDegradation.parse("none")) == "none"
    for bad in ("jpeg", "jpeg:0", "h264:60", "h264:x", "gif:3"):
        with pytest.raises(ConfigError):
            LRDegradation.parse(bad)


def test_run_compares_models_on_compressed_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _textured(tmp_path / "T")
    out = tmp_path / "r.json"
    argv = ("--model", "bicubic", "--data", str(data), "--lr-degrade", "none", "--lr-degrade", "jpeg:30", "--json", str(out))
    assert eval_command.run(_args(*argv)) == 0
    assert "jpeg:30" in capsys.readouterr().out
    rows = json.loads(out.read_text())["datasets"]["T"]
    assert rows["jpeg:30"]["bicubic"]["psnr"] < rows["none"]["bicubic"]["psnr"]
