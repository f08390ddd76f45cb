"""CCTV degradations: seeded, bounded, they change the image, and strength 0 is the identity."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamsr.errors import ConfigError
from train.config import CCTVConfig, config_from_dict
from streamsr.evaluate import image_files
from train.data import PatchSampler
from train.degrade import CCTVDegradation, Draw, add_noise, gaussian_blur, jpeg, video


def _plane(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth image with edges (what compression and blur act on), uint8."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img[h // 3 : h // 2, :] = 230.0
    return np.clip(img, 0, 255).astype(np.uint8)


STRONG = CCTVConfig(blur_prob=1.0, noise_prob=1.0, jpeg_prob=1.0, blur_sigma=(0.8, 1.2), noise_sigma=(3.0, 6.0))


def test_seeded_deterministic_changed_and_bounded() -> None:
    deg = CCTVDegradation(STRONG)
    img = _plane()
    a = deg.apply(img, np.random.default_rng(5))
    b = deg.apply(img, np.random.default_rng(5))
    c = deg.apply(img, np.random.default_rng(6))
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    diff = np.abs(a.astype(np.float64) - img)
    assert diff.mean() > 1.0  # it does degrade
    assert diff.mean() < 25.0  # and the picture is still the picture
    assert np.corrcoef(a.ravel(), img.ravel())[0, 1] > 0.9


def test_strength_zero_is_identity_and_strength_grows() -> None:
    img = _plane(seed=1)
    rng = np.random.default_rng(0)
    assert np.array_equal(CCTVDegradation(STRONG, strength=0.0).apply(img, rng), img)
    errs = []
    for s in (0.25, 1.0):
        out = CCTVDegradation(STRONG, strength=s).apply(img, np.random.default_rng(3))
        errs.append(np.abs(out.astype(np.float64) - img).mean())
    assert errs[0] < errs[1]


def test_stages() -> None:
    img = _plane(seed=2).astype(np.float32)
    assert np.array_equal(gaussian_blur(img, 0.0), img)
    blurred = gaussian_blur(img, 1.5)
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(img, axis=1)).mean()
    assert blurred.mean() == pytest.approx(img.mean(), abs=1.0)
    noisy = add_noise(img, 5.0, np.random.default_rng(0))
    assert np.std(noisy - img) == pytest.approx(5.0, rel=0.15)
    dark = np.full((64, 64), 8.0, np.float32)
    pois = add_noise(dark, 5.0, np.random.default_rng(0), poisson=True)
    assert np.std(pois - dark) == pytest.approx(5.0 * np.sqrt(8 / 128), rel=0.15)  # less noise in the dark
    q_lo = np.abs(jpeg(img, 10).astype(np.float64) - img).mean()
    q_hi = np.abs(jpeg(img, 95).astype(np.float64) - img).mean()
    assert q_hi < q_lo and q_lo > 1.0
    with pytest.raises(ConfigError):
        jpeg(img, 0)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_video_round_trip_of_a_p_frame(codec: str) -> None:
    img = _plane(37, 45, seed=3)  # odd sizes: padded for 4:2:0, cropped back
    hi = video(img, codec, 12, frames=4, motion=(1, -2))
    lo = video(img, codec, 45, frames=4, motion=(1, -2))
    assert hi.shape == img.shape and hi.dtype == np.uint8
    e_hi = np.abs(hi.astype(np.float64) - img).mean()
    e_lo = np.abs(lo.astype(np.float64) - img).mean()
    assert e_hi < e_lo and e_hi < 3.0
    # the kept frame is the image itself, not a shifted copy
    shifted = np.roll(img, 2, axis=1).astype(np.float64)
    assert e_hi < np.abs(shifted - img).mean() / 2
    with pytest.raises(ConfigError):
        video(img, "vp9", 30)


def test_draw_mixes_codecs_in_their_proportions() -> None:
    cfg = CCTVConfig(jpeg_prob=0.2, h264_prob=0.5, hevc_prob=0.1, clip_frames=(1, 3), motion=1)
    deg = CCTVDegradation(cfg)
    rng = np.random.default_rng(0)
    draws = [deg.draw(rng) for _ in range(4000)]
    share = {k: sum(d.codec == k for d in draws) / len(draws) for k in ("jpeg", "h264", "hevc", None)}
    assert share["jpeg"] == pytest.approx(0.2, abs=0.03) and share["h264"] == pytest.approx(0.5, abs=0.03)
    assert share["hevc"] == pytest.approx(0.1, abs=0.02) and share[None] == pytest.approx(0.2, abs=0.03)
    assert all(22 <= d.quality <= 40 for d in draws if d.codec in ("h264", "hevc"))
    assert {d.frames for d in draws} == {1, 2, 3} and {d.motion[0] for d in draws} == {-1, 0, 1}
    with pytest.raises(ConfigError):
        CCTVDegradation(CCTVConfig(jpeg_prob=0.6, h264_prob=0.6))
    out = deg.apply(_plane(seed=5), rng, Draw(codec="h264", quality=35, frames=3, motion=(1, 1)))
    assert out.shape == (48, 64) and out.dtype == np.uint8


def test_sampler_with_cctv_degradation(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(_plane(60, 72, seed=i), cv2.COLOR_GRAY2BGR))
    clean = PatchSampler(image_files(folder), 2, 12)
    dirty = PatchSampler(image_files(folder), 2, 12, CCTVDegradation(STRONG))
    lr_c, hr_c = clean.sample(8, np.random.default_rng(4))
    lr_d, hr_d = dirty.sample(8, np.random.default_rng(4))
    assert lr_d.shape == lr_c.shape == (8, 1, 12, 12) and lr_d.dtype == np.float32
    assert np.array_equal(hr_c, hr_d)  # same positions and flips; the targets stay clean
    assert 0.0 <= lr_d.min() and lr_d.max() <= 1.0
    assert np.abs(lr_d - lr_c).mean() > 0.004
    twin = PatchSampler(image_files(folder), 2, 12, CCTVDegradation(STRONG))
    again, _ = twin.sample(8, np.random.default_rng(4))
    assert np.array_equal(again, lr_d)  # seeded


def test_parallel_degradation_gives_the_same_patches(tmp_path: Path) -> None:
    """Images are degraded on a thread pool, but draws and noise seeds are taken in order, so
    the patches do not depend on the number of threads (a resumed run repeats exactly)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(_plane(48, 64, seed=i), cv2.COLOR_GRAY2BGR))
    mixed = CCTVConfig(jpeg_prob=0.3, h264_prob=0.4, hevc_prob=0.2, refresh=3)
    runs = []
    for workers in (1, 4):
        sampler = PatchSampler(image_files(folder), 2, 12, CCTVDegradation(mixed), workers=workers)
        rng = np.random.default_rng(11)
        runs.append([sampler.sample(4, rng)[0] for _ in range(4)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_sampler_puts_the_jpeg_grid_at_every_offset(tmp_path: Path) -> None:
    """Whole images are compressed, so patches cut the 8x8 grid at every phase (not always 0)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), cv2.cvtColor(_plane(200, 200, seed=7), cv2.COLOR_GRAY2BGR))
    only_jpeg = CCTVConfig(blur_prob=0.0, noise_prob=0.0, jpeg_prob=1.0, jpeg_quality=(20, 20))
    sampler = PatchSampler(image_files(folder), 2, 16, CCTVDegradation(only_jpeg))
    rng = np.random.default_rng(0)
    sampler.sample(1, rng)
    degraded = sampler.degraded[0]
    # blockiness: the jump across an 8-px grid line is larger than inside a block
    cols = np.abs(np.diff(degraded.astype(np.float64), axis=1)).mean(axis=0)
    phase = int(np.argmax([cols[k::8].mean() for k in range(8)]))
    assert phase == 7  # the grid of the whole image: lines between columns 7|8, 15|16, ...
    # patches are cut from that image at any x, so their grid phase is x % 8, not always 0
    lr, _ = sampler.sample(64, rng)
    assert lr.shape == (64, 1, 16, 16)


def test_config_selects_degradation() -> None:
    cfg = config_from_dict({"scale": 2, "degradation": "cctv", "cctv": {"jpeg_quality": [30, 60]}})
    assert cfg.degradation == "cctv" and cfg.cctv.jpeg_quality == (30, 60)
    assert config_from_dict({"scale": 2}).degradation == "bicubic"
    with pytest.raises(ConfigError):
        config_from_dict({"scale": 2, "degradation": "gan"})
    with pytest.raises(ConfigError):
        CCTVDegradation(CCTVConfig(jpeg_quality=(0, 50)))
