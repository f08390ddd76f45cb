"""One image-file reader (sources/image_file.py) under the image inputs of ``enhance`` and the
evaluation: each caller gets what it got from its own reader before."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_image_fidelity import marked, write

from streamsr import evaluate
from streamsr.errors import InputError
from streamsr.sources.image_file import read_image_file, to_8bit
from streamsr.sources.image_source import read_image


def _evaluate_read_image_before(path: Path) -> np.ndarray:
    """evaluate.read_image as it was, on cv2.imread."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img.dtype == np.uint16:
        img = evaluate.to_uint8(img.astype(np.float64) / 257.0)
    if img.ndim == 3:
        return img[:, :, 0] if img.shape[2] == 1 else cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
    return img


def _files(folder: Path) -> list[Path]:
    rng = np.random.default_rng(5)
    pictures = {
        "rgb.png": rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
        "rgba.png": rng.integers(0, 256, (20, 30, 4), dtype=np.uint8),
        "deep.png": rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16),
        "deep_grey.png": rng.integers(0, 65536, (20, 30), dtype=np.uint16),
        "grey.png": rng.integers(0, 256, (20, 30), dtype=np.uint8),
        "photo.jpg": cv2.GaussianBlur(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), (5, 5), 0),
    }
    for name, img in pictures.items():
        assert cv2.imwrite(str(folder / name), img)
    return [folder / name for name in pictures]


def test_evaluation_reads_exactly_as_before(tmp_path: Path) -> None:
    for path in _files(tmp_path):
        got, want = evaluate.read_image(path), _evaluate_read_image_before(path)
        assert got.dtype == np.uint8 and got.flags.c_contiguous, path.name
        assert np.array_equal(got, want), path.name


def test_16_bit_to_8_bit_is_the_same_rounding_for_both_callers() -> None:
    """image_source scaled by 255/65535 (float32), evaluate divided by 257 (float64): every code agrees."""
    codes = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(to_8bit(codes), evaluate.to_uint8(codes.astype(np.float64) / 257.0))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_orientation_is_applied_for_enhance_and_not_for_evaluation(tmp_path: Path, suffix: str) -> None:
    """enhance shows images as viewers do; the evaluation reads them as MATLAB's imread does."""
    path = tmp_path / f"turned{suffix}"
    write(path, marked(), 6)
    stored = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # ignores the orientation
    assert read_image_file(path, upright=False).shape == stored.shape == (24, 40, 3)
    assert read_image_file(path).shape == (40, 24, 3)
    assert evaluate.read_image(path).shape == (24, 40, 3)
    planes, _ = read_image(path)
    assert planes[0].shape == (40, 24)


def test_enhance_keeps_16_bits_and_alpha_unless_told_otherwise(tmp_path: Path) -> None:
    deep = np.random.default_rng(6).integers(0, 65536, (10, 12, 4), dtype=np.uint16)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), deep)
    planes, alpha = read_image(path)
    assert planes[0].dtype == np.uint16 and np.array_equal(alpha, deep[..., 3])
    planes, alpha = read_image(path, max_bits=8)
    assert planes[0].dtype == np.uint8 and np.array_equal(alpha, to_8bit(deep[..., 3]))


def test_unreadable_files_are_input_errors_for_the_evaluation(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "empty.png").write_bytes(b"")
    for name, message in (("bad.png", "cannot read"), ("empty.png", "empty"), ("missing.png", "cannot read image")):
        with pytest.raises(InputError, match=message):
            evaluate.read_image(tmp_path / name)
    with pytest.raises(OSError):  # enhance's image source names these failures itself
        read_image_file(tmp_path / "missing.png")
