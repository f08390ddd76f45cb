"""Run a model on overlapping tiles of a large frame and stitch the results without seams.

Each tile is cut with ``overlap`` extra input pixels on every side that has a neighbour;
only the tile's interior is kept in the output. When ``overlap`` is at least the network's
receptive-field radius, every kept output pixel saw exactly the context it sees in a
whole-frame run, so the stitched result equals the untiled one (up to float rounding).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

RunFn = Callable[[np.ndarray], np.ndarray]


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """For one axis: (read_start, read_stop, keep_start, keep_stop) in input pixels.

    Kept ranges partition [0, length); read ranges add up to ``overlap`` on each side.
    """
    if tile <= 0:
        raise ValueError("tile size must be positive")
    spans = []
    for keep_start in range(0, length, tile):
        keep_stop = min(keep_start + tile, length)
        spans.append((max(keep_start - overlap, 0), min(keep_stop + overlap, length), keep_start, keep_stop))
    return spans


def run_tiled(run: RunFn, batch: np.ndarray, scale: int, tile: int, overlap: int) -> np.ndarray:
    """``run`` maps (N, h, w[, C]) -> (N, h*scale, w*scale[, C]); apply it tile by tile."""
    n, height, width = batch.shape[:3]
    out = np.empty((n, height * scale, width * scale, *batch.shape[3:]), dtype=batch.dtype)
    for r0, r1, k0, k1 in tile_spans(height, tile, overlap):
        for c0, c1, j0, j1 in tile_spans(width, tile, overlap):
            piece = run(np.ascontiguousarray(batch[:, r0:r1, c0:c1]))
            top, left = (k0 - r0) * scale, (j0 - c0) * scale
            out[:, k0 * scale : k1 * scale, j0 * scale : j1 * scale] = piece[
                :, top : top + (k1 - k0) * scale, left : left + (j1 - j0) * scale
            ]
    return out


def tile_for_budget(max_pixels: int, overlap: int) -> int:
    """The largest square tile whose padded input stays within ``max_pixels``."""
    side = int(max_pixels**0.5) - 2 * overlap
    if side < 16:
        raise ValueError(f"a tile budget of {max_pixels} pixels is too small for an overlap of {overlap}")
    return side
