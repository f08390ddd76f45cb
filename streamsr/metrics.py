"""Image quality on the protocol of the published super-resolution tables.

PSNR and SSIM are computed on the Y channel of BT.601 YCbCr (limited range, [16, 235]),
after cropping the HR image to a multiple of the scale (``modcrop``) and a border of
``scale`` pixels from both images (``shave``). SSIM is Wang et al. (2004) with an 11x11
Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, over the valid region, as in the
MATLAB ``ssim_index`` used by the SR evaluation scripts. numpy and OpenCV only.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from streamsr.colour import matlab_rgb2ycbcr_y

__all__ = ["modcrop", "shave", "rgb_to_y_bt601", "image_to_y", "psnr", "ssim", "psnr_y", "ssim_y"]


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def shave(img: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels from every side."""
    if border <= 0:
        return img
    return img[border:-border, border:-border]


# The protocol's Y lives with every other conversion; this module's name for it is kept.
rgb_to_y_bt601 = matlab_rgb2ycbcr_y


def image_to_y(img: np.ndarray) -> np.ndarray:
    """The luma the SR evaluation scripts compare, float64 on the [0, 255] scale.

    An RGB ``uint8`` image gives ``round(rgb_to_y_bt601(img))``, as MATLAB's ``rgb2ycbcr``
    returns ``uint8`` for ``uint8`` input; a float RGB image in [0, 1] gives the unrounded Y.
    A 2-D (grey) image is its own luma and is returned unchanged (``uint8`` as [0, 255],
    float as [0, 1] scaled to [0, 255]), as those scripts use a grey image directly.
    """
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr.astype(np.float64) * (1.0 if arr.dtype == np.uint8 else 255.0)
    y = rgb_to_y_bt601(arr)
    return np.round(y) if arr.dtype == np.uint8 else y


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two same-shape arrays on a [0, peak] scale."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = cv2.getGaussianKernel(size, sigma)
    return g @ g.T


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Mean SSIM of two grey images on a [0, peak] scale (valid region of an 11x11 window)."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim wants two equal 2-D arrays, got {a.shape} and {b.shape}")
    if min(a.shape) < 11:
        raise ValueError(f"image too small for an 11x11 SSIM window: {a.shape}")
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    c1 = (0.01 * peak) ** 2
    c2 = (0.03 * peak) ** 2
    win = _gaussian_window()

    def filt(z: np.ndarray) -> np.ndarray:
        return cv2.filter2D(z, -1, win, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def _prepare_y(sr: np.ndarray, hr: np.ndarray, scale: int, is_y: bool) -> tuple[np.ndarray, np.ndarray]:
    hr = modcrop(np.asarray(hr), scale)
    sr = np.asarray(sr)
    if sr.shape[:2] != hr.shape[:2]:
        sr = sr[: hr.shape[0], : hr.shape[1]]
        if sr.shape[:2] != hr.shape[:2]:
            raise ValueError(f"SR image {sr.shape} is smaller than the cropped HR {hr.shape}")
    if not is_y:
        sr, hr = image_to_y(sr), image_to_y(hr)
    return shave(sr.astype(np.float64), scale), shave(hr.astype(np.float64), scale)


def psnr_y(sr: np.ndarray, hr: np.ndarray, scale: int, is_y: bool = False) -> float:
    """PSNR on Y with modcrop and a ``scale``-pixel border cropped.

    With ``is_y=False`` both inputs are images (RGB or grey, uint8 in [0, 255] or float in
    [0, 1]) converted with :func:`image_to_y`; with ``is_y=True`` they are already luma planes
    on the [0, 255] scale.
    """
    s, h = _prepare_y(sr, hr, scale, is_y)
    return psnr(s, h)


def ssim_y(sr: np.ndarray, hr: np.ndarray, scale: int, is_y: bool = False) -> float:
    """SSIM on Y with modcrop and a ``scale``-pixel border cropped (see :func:`psnr_y`)."""
    s, h = _prepare_y(sr, hr, scale, is_y)
    return ssim(s, h)
