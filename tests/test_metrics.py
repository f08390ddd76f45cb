from __future__ import annotations

import math

import numpy as np
import pytest

from streamsr.metrics import image_to_y, modcrop, psnr, psnr_y, rgb_to_y_bt601, shave, ssim, ssim_y


def test_y_of_primaries_and_extremes() -> None:
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    y = rgb_to_y_bt601(rgb)[0]
    np.testing.assert_allclose(y, [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966])
    np.testing.assert_allclose(rgb_to_y_bt601(rgb.astype(np.float64) / 255), rgb_to_y_bt601(rgb))


def test_image_to_y_rounds_uint8_like_matlab_and_keeps_grey() -> None:
    rgb = np.array([[[255, 0, 0]]], np.uint8)
    assert image_to_y(rgb)[0, 0] == 81.0  # round(81.481)
    assert image_to_y(rgb.astype(np.float64) / 255)[0, 0] == pytest.approx(81.481)
    grey = np.array([[0, 17, 255]], np.uint8)
    np.testing.assert_array_equal(image_to_y(grey), [[0.0, 17.0, 255.0]])
    with pytest.raises(ValueError):
        rgb_to_y_bt601(np.zeros((4, 4, 2)))


def test_modcrop_and_shave() -> None:
    img = np.zeros((13, 10, 3))
    assert modcrop(img, 3).shape == (12, 9, 3)
    assert modcrop(img, 2).shape == (12, 10, 3)
    assert shave(np.zeros((10, 12)), 2).shape == (6, 8)


def test_psnr_known_value() -> None:
    a = np.zeros((8, 8))
    b = np.full((8, 8), 2.55)  # MSE = 6.5025 -> PSNR = 10 log10(255^2 / 6.5025) = 40 dB
    assert psnr(a, b) == pytest.approx(40.0)
    assert psnr(a, a) == math.inf


def test_ssim_identity_and_degradation() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((40, 40)) * 255
    assert ssim(img, img) == pytest.approx(1.0)
    noisy = img + rng.normal(0, 20, img.shape)
    assert 0 < ssim(img, noisy) < 0.99
    # SSIM is symmetric and lower for more noise
    assert ssim(img, noisy) == pytest.approx(ssim(noisy, img))
    assert ssim(img, img + rng.normal(0, 40, img.shape)) < ssim(img, noisy)


def test_ssim_constant_images_matches_formula() -> None:
    # Two constants a, b: sigma terms vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = np.full((20, 20), 100.0), np.full((20, 20), 110.0)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1))


def test_psnr_y_crops_border_and_modcrops() -> None:
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (26, 31, 3), dtype=np.uint8)
    sr = modcrop(hr, 4).copy()
    sr[:4] = 0  # damage only the border that is cropped
    assert psnr_y(sr, hr, 4) == math.inf
    assert ssim_y(sr, hr, 4) == pytest.approx(1.0)
    sr[10, 10] = 255 - sr[10, 10]
    assert psnr_y(sr, hr, 4) < 60
