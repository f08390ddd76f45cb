"""Colour conversions and chroma handling, in one place.

Video stays in YCbCr end to end: Y-channel models see the decoded Y plane, chroma is
upscaled classically and the output is written with the input's matrix and range, so no
RGB round trip happens per frame. Images (RGB files) are converted with the full-range
BT.601 matrix that JPEG uses, which OpenCV's YCrCb conversion implements.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# What RGB video sources (rgb24, gbrp, palette) are converted to YUV with, and tagged as in
# the output: FFmpeg's swscale default, BT.601 (SMPTE 170M) matrix, limited range.
RGB_SOURCE_COLORSPACE = 6  # AVCOL_SPC_SMPTE170M
RGB_SOURCE_RANGE = 1  # AVCOL_RANGE_MPEG (limited)


@dataclass(frozen=True)
class LumaScale:
    """How code values of a luma plane map to the [0, 1] floats the models take.

    The shipped models were trained on 8-bit limited-range Y / 255 (16/255 is black,
    235/255 white), and the 8-bit path has always fed ``Y / 255``. Deeper video keeps that
    meaning exactly: a limited-range n-bit code is ``(219 * E + 16) * 2**(n - 8)``, so it is
    divided by ``255 * 2**(n - 8)`` (10-bit black 64 and white 940 land on 16/255 and 235/255,
    as in 8 bits); a full-range n-bit code is ``(2**n - 1) * E``, divided by ``2**n - 1``
    (1023 is 1.0 like 8-bit 255). A naive ``/ 1023`` for limited range would shift every level.
    """

    bits: int = 8
    full_range: bool = False

    @property
    def peak(self) -> int:
        return (1 << self.bits) - 1

    @property
    def unit(self) -> float:
        """The code value that maps to 1.0."""
        if self.bits <= 8 or self.full_range:
            return float(self.peak)
        return 255.0 * (1 << (self.bits - 8))

    @property
    def dtype(self) -> type:
        return np.uint8 if self.bits <= 8 else np.uint16


def luma_to_unit(planes: np.ndarray, scale: LumaScale) -> np.ndarray:
    """uint8/uint16 code values -> float32 in the models' [0, 1] (see LumaScale)."""
    x = planes.astype(np.float32)
    x *= 1.0 / scale.unit
    return x


def unit_to_luma(values: np.ndarray, scale: LumaScale) -> np.ndarray:
    """Floats from a model -> code values of ``scale``, rounded and clamped to [0, peak]."""
    y = np.asarray(values, dtype=np.float32) * scale.unit
    y += 0.5
    np.clip(y, 0.0, float(scale.peak), out=y)
    return y.astype(scale.dtype)


def chroma_factor(plane_len: int, luma_len: int) -> int:
    """The power of two that maps a luma length to this chroma length (odd sizes round up)."""
    for factor in (1, 2, 4):
        if -(-luma_len // factor) == plane_len:
            return factor
    return 2 if plane_len < luma_len else 1


def upscale_chroma(plane: np.ndarray, luma_in: tuple[int, int], luma_out: tuple[int, int]) -> np.ndarray:
    """Bicubic upscale of one chroma plane so that it fits a luma plane of ``luma_out``.

    Subsampling is inferred from the input pair, which keeps odd sizes right
    (a 5-pixel-wide luma has a 3-pixel-wide 4:2:0 chroma; 10 wide needs 5, not 6).
    Sizes are (height, width).
    """
    sub_h = chroma_factor(plane.shape[0], luma_in[0])
    sub_w = chroma_factor(plane.shape[1], luma_in[1])
    out_h = -(-luma_out[0] // sub_h)
    out_w = -(-luma_out[1] // sub_w)
    return cv2.resize(plane, (out_w, out_h), interpolation=cv2.INTER_CUBIC)


def upscale_planes_classic(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray], scale: int, interpolation: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All three planes upscaled by one classical filter (for bicubic/nearest references)."""
    y = planes[0]
    out = (y.shape[0] * scale, y.shape[1] * scale)
    y2 = cv2.resize(y, (out[1], out[0]), interpolation=interpolation)
    chroma = []
    for c in planes[1:]:
        sub_h = chroma_factor(c.shape[0], y.shape[0])
        sub_w = chroma_factor(c.shape[1], y.shape[1])
        size = (-(-out[1] // sub_w), -(-out[0] // sub_h))
        chroma.append(cv2.resize(c, size, interpolation=interpolation))
    return y2, chroma[0], chroma[1]


def bgr_to_planes(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An 8- or 16-bit BGR image to full-range BT.601 (Y, Cb, Cr) planes of the same depth."""
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    return ycrcb[..., 0].copy(), ycrcb[..., 2].copy(), ycrcb[..., 1].copy()


def planes_to_bgr(planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Full-size (4:4:4) full-range BT.601 planes back to a BGR image of the same depth."""
    y, cb, cr = planes
    return cv2.cvtColor(np.dstack([y, cr, cb]), cv2.COLOR_YCrCb2BGR)


def gray_to_planes(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gray (8- or 16-bit) as Y with neutral chroma (the middle code: 128 or 32768)."""
    neutral = np.full_like(gray, (np.iinfo(gray.dtype).max + 1) // 2)
    return gray, neutral, neutral.copy()
