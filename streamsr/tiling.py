"""Run a model on overlapping tiles of a large frame and stitch the results without seams.

Each tile is cut with ``overlap`` extra input pixels on every side that has a neighbour;
only the tile's interior is kept in the output. When ``overlap`` is at least the network's
receptive-field radius, every kept output pixel saw exactly the context it sees in a
whole-frame run, so the stitched result equals the untiled one (up to float rounding).

Every tile read has the same shape (tiles at the borders read further inwards instead of
less), so an engine that compiles per input shape (OpenVINO) compiles once per frame size,
not once per border case.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

RunFn = Callable[[np.ndarray], np.ndarray]


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """For one axis: (read_start, read_stop, keep_start, keep_stop) in input pixels.

    Kept ranges partition [0, length); each read range holds its kept range with at least
    ``overlap`` pixels on each side that has them, and all read ranges are
    ``min(tile + 2 * overlap, length)`` long.
    """
    if tile <= 0:
        raise ValueError("tile size must be positive")
    window = min(tile + 2 * overlap, length)
    spans = []
    for keep_start in range(0, length, tile):
        keep_stop = min(keep_start + tile, length)
        read_start = min(max(keep_start - overlap, 0), length - window)
        spans.append((read_start, read_start + window, keep_start, keep_stop))
    return spans


def run_tiled(run: RunFn, batch: np.ndarray, scale: int, tile: int | tuple[int, int], overlap: int) -> np.ndarray:
    """``run`` maps (N, h, w[, C]) -> (N, h*scale, w*scale[, C]); apply it tile by tile.

    ``tile`` is the kept size of a tile, square or (height, width).
    """
    n, height, width = batch.shape[:3]
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
    out = np.empty((n, height * scale, width * scale, *batch.shape[3:]), dtype=batch.dtype)
    for r0, r1, k0, k1 in tile_spans(height, tile_h, overlap):
        for c0, c1, j0, j1 in tile_spans(width, tile_w, overlap):
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


@lru_cache(maxsize=64)
def tile_grid(height: int, width: int, max_pixels: int, overlap: int) -> tuple[int, int]:
    """Kept (height, width) of tiles that cover the frame in the fewest input pixels read,
    each read (tile plus overlap, within the frame) at most ``max_pixels``.

    A frame just over the budget is cut in two halves, not in squares: 1920x1080 at 2 MP
    reads 2 tiles of 1008x1080 (5% more than the frame), not 2 of 1429x1080 (49% more).
    """
    best: tuple[int, int, int] | None = None
    for rows in range(1, height + 1):
        tile_h = -(-height // rows)
        read_h = min(tile_h + 2 * overlap, height)
        if read_h * min(1 + 2 * overlap, width) > max_pixels:
            continue
        max_read_w = max_pixels // read_h
        if max_read_w >= width:
            cols, tile_w = 1, width
        else:
            tile_w = max_read_w - 2 * overlap
            if tile_w < 16:
                continue
            cols = -(-width // tile_w)
            tile_w = -(-width // cols)  # even the tiles out
        read = rows * cols * read_h * min(tile_w + 2 * overlap, width)
        if best is None or read < best[0]:
            best = (read, tile_h, tile_w)
        if rows * read_h > 4 * height:  # more rows only read more
            break
    if best is None:
        raise ValueError(f"a tile budget of {max_pixels} pixels is too small for an overlap of {overlap}")
    return best[1], best[2]
