"""`streamsr enhance` on still images: one file, or a folder of png/jpg (colour, gray, RGBA, 16-bit)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from synth import leftovers


def picture(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful BGR test picture with a few hard edges."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    b = 128 + 100 * np.sin(xx / 7.0)
    g = 128 + 100 * np.cos(yy / 9.0)
    r = 60 + 150 * (xx + yy) / (w + h)
    img = np.dstack([b, g, r]).clip(0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w - 12)), int(rng.integers(0, h - 12))
        img[y0:y0 + 10, x0:x0 + 10] = rng.integers(0, 256, 3, dtype=np.uint8)
    return img


def read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"cannot read {path}"
    return img


def down(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "colour.png"), picture(64, 48))
    cv2.imwrite(str(d / "photo.jpg"), picture(80, 60, seed=1), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(d / "gray.png"), cv2.cvtColor(picture(50, 40, seed=2), cv2.COLOR_BGR2GRAY))
    rgba = np.dstack([picture(40, 30, seed=3), np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))])
    cv2.imwrite(str(d / "alpha.png"), rgba)
    cv2.imwrite(str(d / "deep.png"), picture(32, 24, seed=4).astype(np.uint16) * 257)  # 16-bit
    (d / "notes.txt").write_text("not an image")
    return d


def test_folder_of_images(image_folder, tmp_path, model_args, run_cli):
    out = tmp_path / "out"  # created by enhance
    r = run_cli("enhance", image_folder, "-o", out, *model_args(2))
    assert r.code == 0, r.err
    names = ["alpha.png", "colour.png", "deep.png", "gray.png", "photo.jpg"]
    assert sorted(p.name for p in out.iterdir()) == names  # same names, no notes.txt, no temp files
    for name in names:
        src, got = read(image_folder / name), read(out / name)
        h, w = src.shape[:2]
        assert got.shape[:2] == (2 * h, 2 * w), name
        assert got.dtype == (np.uint16 if name == "deep.png" else np.uint8), name  # 16 bits stay 16
        got = (got // 257).astype(np.uint8) if got.dtype == np.uint16 else got
        src8 = (src // 257).astype(np.uint8) if src.dtype == np.uint16 else src
        if src8.ndim == 2:  # gray in: gray content out (written as three equal channels)
            assert got.ndim == 3 and mean_abs(got[..., 0], got[..., 2]) < 1.0, name
            got = got[..., 0]
        limit = 8.0 if name.endswith(".jpg") else 5.0
        assert mean_abs(down(got[..., :3] if got.ndim == 3 else got, w, h), src8[..., :3] if src8.ndim == 3 else src8) < limit, name
    alpha_src, alpha_out = read(image_folder / "alpha.png")[..., 3], read(out / "alpha.png")
    assert alpha_out.shape[2] == 4
    assert mean_abs(down(alpha_out[..., 3], 40, 30), alpha_src) < 2.0


def test_colours_are_not_swapped(tmp_path, model_args, run_cli):
    """Pure red, green and blue squares come out red, green and blue (catches Cb/Cr or
    BGR/RGB swaps, which a gray or luma-only check would miss)."""
    img = np.zeros((30, 90, 3), np.uint8)
    img[:, 0:30] = (0, 0, 255)  # red (BGR)
    img[:, 30:60] = (0, 255, 0)  # green
    img[:, 60:90] = (255, 0, 0)  # blue
    src = tmp_path / "rgb.png"
    cv2.imwrite(str(src), img)
    out = tmp_path / "rgb_x2.png"
    assert run_cli("enhance", src, "-o", out, *model_args(2)).code == 0
    got = read(out).astype(int)
    for i, channel in enumerate((2, 1, 0)):  # the centre of each square
        pixel = got[30, 30 + 60 * i]
        assert pixel[channel] > 200 and np.delete(pixel, channel).max() < 60, (i, pixel)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_single_image_to_file_odd_size(tmp_path, model_args, run_cli, scale):
    """Images are 4:4:4, so an odd size stays exact: 97x61 x3 is 291x183 (no padding)."""
    src = tmp_path / "odd.png"
    cv2.imwrite(str(src), picture(97, 61))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "big.png"
    r = run_cli("enhance", src, "-o", out, *model_args(scale))
    assert r.code == 0, r.err
    got = read(out)
    assert got.shape == (61 * scale, 97 * scale, 3)
    assert mean_abs(down(got, 97, 61), read(src)) < 5.0
    assert leftovers(out_dir, ["big.png"]) == []


def test_single_image_into_existing_folder(tmp_path, model_args, run_cli):
    src = tmp_path / "pic.jpg"
    cv2.imwrite(str(src), picture(40, 30))
    out = tmp_path / "results"
    out.mkdir()
    assert run_cli("enhance", src, "-o", out, *model_args(2)).code == 0
    assert [p.name for p in out.iterdir()] == ["pic.jpg"]
    assert read(out / "pic.jpg").shape == (60, 80, 3)


def test_random_model_differs_from_content_model(tmp_path, model_args, run_cli):
    """Guards the sanity check above: with random weights the output is not the picture,
    so the closeness measured with the content-preserving model means something."""
    src = tmp_path / "pic.png"
    cv2.imwrite(str(src), picture(64, 48))
    assert run_cli("enhance", src, "-o", tmp_path / "r.png", *model_args(2, name="tiny")).code == 0
    got = read(tmp_path / "r.png")
    assert got.shape == (96, 128, 3)
    assert mean_abs(cv2.cvtColor(down(got, 64, 48), cv2.COLOR_BGR2GRAY),
                    cv2.cvtColor(read(src), cv2.COLOR_BGR2GRAY)) > 10.0


def test_compare_on_an_image(tmp_path, model_args, run_cli):
    src = tmp_path / "pic.png"
    cv2.imwrite(str(src), picture(61, 45))
    out = tmp_path / "cmp.png"
    assert run_cli("enhance", src, "-o", out, *model_args(3), "--compare").code == 0
    got = read(out)
    assert got.shape == (135, 3 * 183, 3)
    ref = read(src)
    # the labels cover the top-left of each panel; compare the rest of each panel to the input
    for i in range(3):
        panel = got[45:, i * 183:(i + 1) * 183]
        assert mean_abs(down(panel, 61, 30), ref[15:]) < 6.0, i
