"""MATLAB-compatible bicubic ``imresize`` in numpy.

This module defines the evaluation protocol (see DESIGN.md): the low-resolution inputs of the
published super-resolution tables were made with MATLAB's ``imresize(img, 1/s, 'bicubic')``,
which uses the cubic kernel with a = -0.5 and, when downscaling, widens the kernel by 1/scale
(antialiasing). OpenCV's INTER_CUBIC (a = -0.75, no antialiasing) and Pillow give different
images and different PSNR.

The weights follow MATLAB's ``contributions`` function exactly: output pixel ``x`` (1-based)
maps to input coordinate ``u = x / scale + 0.5 * (1 - 1 / scale)``; the taps run from
``floor(u - width / 2)`` over ``ceil(width) + 2`` input pixels; out-of-range indices are
mirrored (symmetric padding); weights are normalised to sum to one. Each axis is resampled
with precomputed (cached) sparse weights: a weighted sum of a few gathered rows or columns.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["contributions", "cubic", "imresize", "resize_weights"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    ) * ((ax > 1) & (ax <= 2))


@lru_cache(maxsize=64)
def contributions(
    in_len: int, out_len: int, scale: float, antialias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: 0-based input indices and weights, both ``(out_len, taps)``.

    ``scale`` is the factor MATLAB uses for this axis: the requested factor, or
    ``out_len / in_len`` when an output size was requested. Taps whose weight is zero for
    every output are dropped, as MATLAB does.
    """
    width = 4.0
    if scale < 1 and antialias:
        kernel = lambda t: scale * cubic(scale * t)  # noqa: E731
        width = width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # Mirror out-of-range indices: MATLAB's aux = [1:in, in:-1:1].
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, aux.size)]
    keep = np.any(w != 0, axis=0)
    idx0, w = np.ascontiguousarray(idx0[:, keep]), np.ascontiguousarray(w[:, keep])
    idx0.setflags(write=False)
    w.setflags(write=False)
    return idx0, w


def resize_weights(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The dense ``(out_len, in_len)`` matrix of :func:`contributions` (for inspection)."""
    idx, w = contributions(in_len, out_len, scale, antialias)
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), idx.shape[1])
    np.add.at(mat, (rows, idx.ravel()), w.ravel())
    return mat


def _resize_axis(x: np.ndarray, axis: int, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Sparse resampling along ``axis``: a weighted sum of ``taps`` gathered copies."""
    shape = [1] * x.ndim
    shape[axis] = idx.shape[0]
    out = np.take(x, idx[:, 0], axis=axis) * w[:, 0].reshape(shape)
    for k in range(1, idx.shape[1]):
        out += np.take(x, idx[:, k], axis=axis) * w[:, k].reshape(shape)
    return out


def _output_shape(
    shape: tuple[int, int], scale_or_size: float | tuple[int, int]
) -> tuple[tuple[int, int], tuple[float, float]]:
    h, w = shape
    if isinstance(scale_or_size, (tuple, list)):
        oh, ow = (int(v) for v in scale_or_size)
        if oh <= 0 or ow <= 0:
            raise ValueError(f"output size must be positive, got {scale_or_size}")
        return (oh, ow), (oh / h, ow / w)
    s = float(scale_or_size)
    if s <= 0:
        raise ValueError(f"scale must be positive, got {scale_or_size}")
    # MATLAB: outputSize = ceil(inputSize * scale); the scale itself is kept as given.
    return (int(math.ceil(h * s - 1e-9)), int(math.ceil(w * s - 1e-9))), (s, s)


def imresize(
    img: np.ndarray, scale_or_size: float | tuple[int, int], antialias: bool = True
) -> np.ndarray:
    """Resize an ``HxW`` or ``HxWxC`` array like MATLAB ``imresize(img, s, 'bicubic')``.

    ``scale_or_size`` is a factor (``0.5``, ``1/3``, ``4``) or an ``(height, width)``.
    Computation is in float64 without clipping or rounding; the result is float32 for a
    float32 input and float64 otherwise (integer inputs are converted, not rounded back:
    round and clip yourself to emulate a saved uint8 image).
    """
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise ValueError(f"imresize wants HxW or HxWxC, got shape {arr.shape}")
    out_dtype = np.float32 if arr.dtype == np.float32 else np.float64
    (oh, ow), (sh, sw) = _output_shape(arr.shape[:2], scale_or_size)
    x = arr.astype(np.float64, copy=False)
    # MATLAB resizes the axis with the smaller scale first (ties: rows first).
    for axis in sorted((0, 1), key=lambda a: (sh, sw)[a]):
        n_in = x.shape[axis]
        n_out, s = ((oh, sh), (ow, sw))[axis]
        if n_out == n_in and s == 1.0:
            continue
        idx, w = contributions(n_in, n_out, s, antialias)
        x = _resize_axis(x, axis, idx, w)
    return np.ascontiguousarray(x, dtype=out_dtype)
