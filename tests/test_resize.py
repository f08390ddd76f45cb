from __future__ import annotations

import numpy as np
import pytest

from streamsr.resize import cubic, imresize, resize_weights


def test_cubic_kernel_values() -> None:
    # Keys kernel, a = -0.5: 1 at 0, 0 at integers, -0.0625 at 1.5, 0.5625 at 0.5.
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5])
    np.testing.assert_allclose(cubic(x), [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625])


def test_constant_image_stays_constant() -> None:
    img = np.full((13, 17, 3), 0.37)
    for s in (0.5, 1 / 3, 0.25, 2, 3, 4, (7, 29)):
        out = imresize(img, s)
        np.testing.assert_allclose(out, 0.37, atol=1e-12)


def test_output_sizes() -> None:
    img = np.zeros((30, 45))
    assert imresize(img, 0.5).shape == (15, 23)  # ceil, as MATLAB
    assert imresize(img, 1 / 3).shape == (10, 15)
    assert imresize(img, 4).shape == (120, 180)
    assert imresize(img, (11, 7)).shape == (11, 7)
    assert imresize(np.zeros((30, 45, 3)), 0.25).shape == (8, 12, 3)


def test_weights_rows_sum_to_one_and_are_mirrored() -> None:
    for n_in, n_out, s in [(10, 5, 0.5), (9, 3, 1 / 3), (5, 20, 4.0), (6, 6, 1.0)]:
        w = resize_weights(n_in, n_out, s)
        np.testing.assert_allclose(w.sum(axis=1), 1.0)
        # a symmetric kernel on a symmetric grid: flipping in gives flipped out
        np.testing.assert_allclose(w[::-1, ::-1], w, atol=1e-12)


def test_upscale_x2_hand_computed() -> None:
    # x2 upscale: output pixel 1 maps to u = 0.75, taps at input -1..2 (1-based),
    # distances 1.75, 0.75, -0.25, -1.25 -> weights of the a = -0.5 cubic, normalised.
    w = resize_weights(4, 8, 2.0)
    k = cubic(np.array([1.75, 0.75, -0.25, -1.25]))
    k = k / k.sum()
    # MATLAB's symmetric padding maps index 0 to 1 and index -1 to 2.
    np.testing.assert_allclose(w[0], [k[1] + k[2], k[0] + k[3], 0, 0], atol=1e-12)
    np.testing.assert_allclose(w[0, :2], [1.09375, -0.09375])
    np.testing.assert_allclose(k, [-0.0234375, 0.2265625, 0.8671875, -0.0703125])


def test_downscale_x2_is_antialiased() -> None:
    # Antialiasing widens the kernel to 8 taps: weights of cubic(t / 2) / 2.
    w = resize_weights(16, 8, 0.5)
    row = w[4]  # output 5 -> u = 9.5, taps centred between inputs 9 and 10 (1-based)
    expect = cubic((9.5 - np.arange(6, 14)) / 2) / 2
    expect = expect / expect.sum()
    np.testing.assert_allclose(row[5:13], expect, atol=1e-12)
    img = np.random.default_rng(0).random((16, 16))
    assert not np.allclose(imresize(img, 0.5), imresize(img, 0.5, antialias=False))


def test_linear_ramp_is_preserved_inside() -> None:
    # A cubic kernel with a = -0.5 reproduces linear functions exactly (away from borders).
    ramp = np.tile(np.arange(40, dtype=np.float64), (6, 1))
    up = imresize(ramp, (6, 80))
    x = (np.arange(1, 81) / 2 + 0.25) - 1  # 0-based input coordinate of each output
    np.testing.assert_allclose(up[:, 4:-4], np.tile(x[4:-4], (6, 1)), atol=1e-9)


def test_dtype_and_errors() -> None:
    assert imresize(np.zeros((4, 4), np.float32), 2).dtype == np.float32
    assert imresize(np.zeros((4, 4), np.uint8), 2).dtype == np.float64
    with pytest.raises(ValueError):
        imresize(np.zeros((4,)), 2)
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)), -1)


def test_flips_commute_with_integer_downscale() -> None:
    img = np.random.default_rng(1).random((24, 18))
    for s in (2, 3):
        a = imresize(img[::-1, ::-1], 1 / s)
        b = imresize(img, 1 / s)[::-1, ::-1]
        np.testing.assert_allclose(a, b, atol=1e-12)
        np.testing.assert_allclose(imresize(img.T, 1 / s), imresize(img, 1 / s).T, atol=1e-12)
