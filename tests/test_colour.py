"""Every RGB/YCbCr conversion lives in streamsr.colour; where one replaced a caller's own
formula, it gives that caller's numbers bit for bit."""
from __future__ import annotations

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace

from streamsr import colour, metrics
from streamsr.colour import BT601_TV, Colour, LumaScale, matlab_rgb2ycbcr_y, rgb_to_yuv420_swscale


def _rgb(h: int = 36, w: int = 52, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_protocol_y_is_matlabs_rgb2ycbcr_bit_for_bit() -> None:
    """The evaluation protocol's Y, as metrics.py wrote it before it moved into colour.py."""
    for x in (_rgb(), _rgb(seed=1).astype(np.float64) / 255.0):
        f = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x
        inline = 16.0 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]
        assert np.array_equal(matlab_rgb2ycbcr_y(x), inline)
    assert metrics.rgb_to_y_bt601 is matlab_rgb2ycbcr_y


def test_protocol_weights_are_bt601_limited_range() -> None:
    kr, kb = colour._KR_KB["smpte170m"]
    assert colour.MATLAB_Y_WEIGHTS == pytest.approx((219 * kr, 219 * (1 - kr - kb), 219 * kb), abs=1e-9)
    # the same matrix as the live path's BT.601 limited conversion (which rounds to uint8 codes)
    rgb = _rgb()
    y, _, _ = colour.bgr_to_ycbcr(rgb[..., ::-1].copy(), BT601_TV)
    assert np.abs(y.astype(np.float64) - matlab_rgb2ycbcr_y(rgb)).max() < 1.0


def _swscale_as_synthetic_did(rgb: np.ndarray) -> list[np.ndarray]:
    out = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=Colorspace.ITU601, dst_color_range=ColorRange.MPEG)
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in out.planes]


def _swscale_as_lr_degrade_did(rgb: np.ndarray) -> list[np.ndarray]:
    """swscale's defaults, no colour arguments."""
    out = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in out.planes]


@pytest.mark.parametrize("shape", [(36, 52), (144, 192)])
def test_swscale_conversion_serves_both_of_its_callers_bit_for_bit(shape: tuple[int, int]) -> None:
    """synthetic.py asked swscale for BT.601 limited explicitly, lr_degrade.py took its defaults:
    the one function gives both the very same planes."""
    rgb = _rgb(*shape)
    got = rgb_to_yuv420_swscale(rgb, BT601_TV)
    for want in (_swscale_as_synthetic_did(rgb), _swscale_as_lr_degrade_did(rgb)):
        assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_swscale_conversion_follows_the_matrix_and_range_asked_for() -> None:
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    # 8-bit codes of pure red (ITU-R BT.601 / BT.709 tables), as tests/test_live_colour.py uses them
    codes = {("smpte170m", "tv"): (81, 90, 240), ("bt709", "tv"): (63, 102, 240),
             ("smpte170m", "pc"): (76, 85, 255), ("bt709", "pc"): (54, 99, 255)}
    for (matrix, rng), want in codes.items():
        y, cb, cr = rgb_to_yuv420_swscale(red, Colour(matrix, rng))
        assert (int(y[8, 8]), int(cb[4, 4]), int(cr[4, 4])) == pytest.approx(want, abs=1), (matrix, rng)


@pytest.mark.parametrize("luma", [LumaScale(8, False), LumaScale(8, True), LumaScale(10, False), LumaScale(16, True)])
def test_luma_scale_affine_is_what_luma_to_unit_applies(luma: LumaScale) -> None:
    codes = np.arange(0, luma.peak + 1, max(1, luma.peak // 500), dtype=luma.dtype)
    gain, offset = luma.to_unit()
    unit = colour.luma_to_unit(codes, luma)
    assert np.array_equal(unit, codes.astype(np.float32) * np.float32(gain) + np.float32(offset))
    assert np.array_equal(colour.unit_to_luma(unit, luma), codes)  # and back


def test_gpu_constants_are_the_ones_the_gpu_path_had() -> None:
    """backends/cuda_io.py now takes its full-range mapping from LumaScale: the same doubles."""
    assert LumaScale(8, True).to_unit() == (219.0 / 255.0 / 255.0, 16.0 / 255.0)
    assert LumaScale(8, True).from_unit() == (16.0 / 255.0, 255.0 * 255.0 / 219.0)
    assert LumaScale(8, False).to_unit() == (1.0 / 255.0, 0.0)
    assert LumaScale(8, False).from_unit() == (0.0, 255.0)


def test_full_range_unit_conversions_agree_with_luma_scale() -> None:
    """benchmarks/quality.py feeds OpenCV's dnn_superres full-range Y through these."""
    codes = np.arange(256, dtype=np.uint8)
    unit = colour.luma_to_unit(codes, LumaScale(8, full_range=True)).astype(np.float64)
    np.testing.assert_allclose(colour.unit_to_full_range(unit), codes / 255.0, atol=1e-6)
    np.testing.assert_allclose(colour.full_range_to_unit(codes / 255.0), unit, atol=1e-6)
    x = np.linspace(-0.1, 1.1, 101)
    np.testing.assert_allclose(colour.full_range_to_unit(colour.unit_to_full_range(x)), x, atol=1e-12)


def _implied_before(width: int, height: int, colorspace, primaries, color_range) -> tuple[int, int, int]:
    """carry.implied_colour as it was, before it moved into colour.py."""
    hd = width >= 1280 or height > 576
    if colorspace in (None, 2):
        colorspace = 1 if hd else 6
    if primaries in (None, 2):
        primaries = 1 if hd else (5 if height == 576 else 6)
    if color_range in (None, 0):
        color_range = 1
    return colorspace, primaries, color_range


def test_the_files_untagged_colour_guess_is_unchanged() -> None:
    sizes = [(320, 240), (720, 576), (720, 480), (1024, 600), (960, 720), (1280, 536), (1920, 1080)]
    for (w, h) in sizes:
        for tags in [(None, None, None), (2, 2, 0), (9, 9, 2), (1, None, 1), (None, 5, None)]:
            assert colour.implied_colour(w, h, *tags) == _implied_before(w, h, *tags), (w, h, tags)


def test_files_and_live_guess_untagged_matrices_by_the_same_rule() -> None:
    """A camera recorded and the same camera live get the same colours (the players' size rule)."""
    for (w, h), expected in [((640, 360), "smpte170m"), ((720, 576), "smpte170m"), ((1024, 600), "bt709"),
                             ((1280, 536), "bt709"), ((960, 720), "bt709"), ((1920, 1080), "bt709")]:
        live = colour.colour_from_tags(None, None, w, h).matrix
        files = colour.implied_colour(w, h, None, None, None)[0]
        assert live == expected and colour.MATRICES[live] == files, (w, h)
