"""The Python API as a user would call it: images in three layouts, odd sizes, mixed batches, PyAV frames, files."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import streamsr
from streamsr.errors import InputError, ModelError


def _photo(h: int = 37, w: int = 53, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.fixture()
def sr(models_dir: Path):
    with streamsr.Upscaler(model=str(models_dir / "tiny_x2.json"), scale=2, engine="onnxruntime") as up:
        yield up


def test_the_cli_and_the_api_give_the_same_picture(sr, models_dir: Path, tmp_path: Path, run_cli) -> None:
    """One path: `streamsr enhance` on a PNG writes exactly what Upscaler.upscale returns."""
    bgr = _photo()
    cv2.imwrite(str(tmp_path / "in.png"), bgr)
    r = run_cli("enhance", tmp_path / "in.png", "-o", tmp_path / "out.png", "--model", models_dir / "tiny_x2.json",
                "--engine", "onnxruntime")
    assert r.code == 0, r.err
    assert np.array_equal(cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED), sr.upscale(bgr))


def test_layouts_bgr_rgb_grey_and_alpha(sr) -> None:
    bgr = _photo(31, 45)  # odd sizes
    out = sr.upscale(bgr)
    assert out.shape == (62, 90, 3) and out.dtype == np.uint8
    assert np.array_equal(sr.upscale(bgr[..., ::-1].copy(), layout="rgb"), out[..., ::-1])
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    g = sr.upscale(grey)
    assert g.shape == (62, 90) and g.dtype == np.uint8
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 200, np.uint8)])
    a = sr.upscale(bgra)
    assert a.shape == (62, 90, 4) and np.array_equal(a[..., :3], out) and (a[..., 3] == 200).all()
    deep = sr.upscale(bgr.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and np.abs(deep.astype(int) // 257 - out.astype(int)).max() <= 3
    assert sr.card.name == "tiny_x2" and sr.card.scale == 2 and "onnxruntime" in sr.engine


def test_a_batch_of_mixed_sizes_is_grouped_and_keeps_its_order(sr) -> None:
    images = [_photo(20, 30, 1), _photo(33, 41, 2), _photo(20, 30, 3), cv2.cvtColor(_photo(20, 30, 4), cv2.COLOR_BGR2GRAY)]
    outs = sr.upscale_batch(images)
    assert [o.shape for o in outs] == [(40, 60, 3), (66, 82, 3), (40, 60, 3), (40, 60)]
    for img, out in zip(images, outs):
        assert np.array_equal(out, sr.upscale(img))


def test_pyav_frames_keep_format_timestamps_and_colour(sr) -> None:
    rgb = _photo(48, 64)[..., ::-1].copy()
    for fmt in ("yuv420p", "yuv422p10le", "yuvj420p"):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)
        frame.pts, frame.time_base = 4004, Fraction(1, 30000)
        frame.colorspace, frame.color_primaries, frame.color_trc = 1, 1, 1  # BT.709
        out = sr.upscale_frame(frame)
        assert (out.width, out.height) == (128, 96)
        assert out.pts == 4004 and out.time_base == Fraction(1, 30000)
        assert (int(out.colorspace), int(out.color_primaries), int(out.color_trc)) == (1, 1, 1)
        if fmt == "yuvj420p":
            assert out.format.name == "yuv420p" and int(out.color_range) == 2  # same layout, full range
        else:
            assert out.format.name == fmt
    bgr_frame = av.VideoFrame.from_ndarray(_photo(48, 64), format="bgr24")
    assert sr.upscale_frame(bgr_frame).format.name == "bgr24"


def test_bad_input_is_a_streamsr_error(sr, models_dir: Path) -> None:
    with pytest.raises(InputError, match="uint8 or uint16"):
        sr.upscale(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InputError, match="shape"):
        sr.upscale(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ModelError):
        streamsr.Upscaler(model="no_such_model", scale=2)
    sr.close()
    with pytest.raises(InputError, match="closed"):
        sr.upscale(_photo())


def test_enhance_video_reports_progress_and_statistics(models_dir: Path, clip_factory, tmp_path: Path) -> None:
    clip = clip_factory("api.mp4", frames=6)
    seen: list[tuple[int, int | None]] = []
    result = streamsr.enhance_video(clip.path, tmp_path / "out.mp4", model=str(models_dir / "near_x2.json"),
                                    engine="onnxruntime", progress=lambda done, total: seen.append((done, total)))
    assert result.stats.frames == 6 and result.model == "near_x2"
    assert seen[-1] == (6, 6) and [d for d, _ in seen] == list(range(1, 7))
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.width == 2 * clip.size[0]
