"""Tiled inference matches whole-frame inference: no seams."""
from __future__ import annotations

import numpy as np
import pytest

from streamsr.backends import create_backend
from streamsr.tiling import run_tiled, tile_for_budget, tile_grid, tile_spans
from tiny_model import write_tiny_model

TINY_RADIUS = 3  # conv 5x5 then conv 3x3


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    card = write_tiny_model(tmp_path_factory.mktemp("tiling"), scale=2)
    with create_backend("onnxruntime", card, threads=1) as b:
        yield b


def _frame(h: int, w: int, n: int = 1) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (n, h, w), dtype=np.uint8)


def test_spans_partition_the_axis():
    spans = tile_spans(100, 32, 5)
    kept = [i for _, _, k0, k1 in spans for i in range(k0, k1)]
    assert kept == list(range(100))
    # at least the overlap of context on each side that has it, every read the same length
    assert all(r0 <= max(k0 - 5, 0) and r1 >= min(k1 + 5, 100) for r0, r1, k0, k1 in spans)
    assert {r1 - r0 for r0, r1, _, _ in spans} == {42}
    assert {r1 - r0 for r0, r1, _, _ in tile_spans(30, 32, 5)} == {30}


def test_tiled_equals_untiled_with_enough_overlap(backend):
    batch = _frame(77, 93, n=2)
    whole = backend.run(batch)
    tiled = run_tiled(backend._run_whole, batch, 2, tile=20, overlap=TINY_RADIUS + 1)
    assert tiled.shape == whole.shape
    assert np.abs(tiled.astype(int) - whole).max() <= 1


def test_too_little_overlap_shows_seams(backend):
    """The check above can fail: without overlap the tile borders differ."""
    batch = _frame(64, 64)
    whole = backend.run(batch)
    seamed = run_tiled(backend._run_whole, batch, 2, tile=16, overlap=0)
    assert np.abs(seamed.astype(int) - whole).max() > 1


def test_backend_tiles_when_over_its_pixel_budget(backend, monkeypatch):
    batch = _frame(150, 170)
    whole = backend.run(batch)
    calls = []
    real = backend._run_whole
    monkeypatch.setattr(backend, "_run_whole", lambda b: calls.append(b.shape) or real(b))
    monkeypatch.setattr(backend, "max_pixels", 80 * 80)
    tiled = backend.run(batch)
    assert len(calls) > 1 and all(h * w <= 80 * 80 for _, h, w in calls)
    assert np.abs(tiled.astype(int) - whole).max() <= 1


def test_budget_too_small_is_an_error():
    with pytest.raises(ValueError):
        tile_for_budget(30 * 30, 24)


@pytest.mark.parametrize("h, w, budget", [(1080, 1920, 2_040_000), (1080, 1920, 600_000), (3000, 4000, 1_000_000),
                                           (150, 170, 6400), (61, 4000, 20_000)])
def test_tile_grid_fits_the_budget_and_reads_little(h, w, budget):
    tile_h, tile_w = tile_grid(h, w, budget, 24)
    rows, cols = tile_spans(h, tile_h, 24), tile_spans(w, tile_w, 24)
    reads = [(r1 - r0) * (c1 - c0) for r0, r1, *_ in rows for c0, c1, *_ in cols]
    assert max(reads) <= budget
    assert len({(r1 - r0, c1 - c0) for r0, r1, *_ in rows for c0, c1, *_ in cols}) == 1  # one shape
    if budget >= 2_000_000:
        assert sum(reads) <= 1.1 * h * w  # two halves, not squares


def test_backend_tiles_with_one_shape(backend, monkeypatch):
    batch = _frame(150, 170)
    shapes = set()
    real = backend._run_whole
    monkeypatch.setattr(backend, "_run_whole", lambda b: shapes.add(b.shape) or real(b))
    monkeypatch.setattr(backend, "max_pixels", 60 * 60)
    backend.run(batch)
    assert len(shapes) == 1
