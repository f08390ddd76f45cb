"""Colour conversions and chroma handling, in one place.

Video stays in YCbCr end to end: Y-channel models see the decoded Y plane, chroma is
upscaled classically and the output is written with the input's matrix and range, so no
RGB round trip happens per frame. Images (RGB files) are converted with the full-range
BT.601 matrix that JPEG uses, which OpenCV's YCrCb conversion implements.
"""
from __future__ import annotations

import cv2
import numpy as np


def upscale_chroma(plane: np.ndarray, luma_in: tuple[int, int], luma_out: tuple[int, int]) -> np.ndarray:
    """Bicubic upscale of one chroma plane so that it fits a luma plane of ``luma_out``.

    Subsampling is inferred from the input pair, which keeps odd sizes right
    (a 5-pixel-wide luma has a 3-pixel-wide 4:2:0 chroma; 10 wide needs 5, not 6).
    Sizes are (height, width).
    """
    sub_h = 2 if plane.shape[0] < luma_in[0] else 1
    sub_w = 2 if plane.shape[1] < luma_in[1] else 1
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
        sub_h = 2 if c.shape[0] < y.shape[0] else 1
        sub_w = 2 if c.shape[1] < y.shape[1] else 1
        size = (-(-out[1] // sub_w), -(-out[0] // sub_h))
        chroma.append(cv2.resize(c, size, interpolation=interpolation))
    return y2, chroma[0], chroma[1]


def bgr_to_planes(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An 8-bit BGR image to full-range BT.601 (Y, Cb, Cr) planes."""
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    return ycrcb[..., 0].copy(), ycrcb[..., 2].copy(), ycrcb[..., 1].copy()


def planes_to_bgr(planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Full-size (4:4:4) full-range BT.601 planes back to an 8-bit BGR image."""
    y, cb, cr = planes
    return cv2.cvtColor(np.dstack([y, cr, cb]), cv2.COLOR_YCrCb2BGR)


def gray_to_planes(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    neutral = np.full_like(gray, 128)
    return gray, neutral, neutral.copy()
