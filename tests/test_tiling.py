"""Tiled inference matches whole-frame inference: no seams."""
from __future__ import annotations

import numpy as np
import pytest

from streamsr.backends import create_backend
from streamsr.tiling import run_tiled, tile_for_budget, tile_spans
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
    assert all(r0 == max(k0 - 5, 0) and r1 == min(k1 + 5, 100) for r0, r1, k0, k1 in spans)


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
