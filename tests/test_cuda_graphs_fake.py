"""The cuda backend's CUDA graphs, checked on a CPU with a fake ``torch.cuda`` (tests/fake_gpu.py).

Graphs are kept in a least-recently-used cache with a cap, all captured into one memory pool,
and tiles run eagerly (no graph per tile shape). The model is the shipped ESPCN x2 in fp32 on
the CPU, so every result can be compared with the torch backend's. Names new with these tests
are imported inside the tests, so that each fails on its own against the code before them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fake_gpu
from streamsr import zoo
from streamsr.backends import create_backend
from streamsr.backends import cuda_backend

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def card():
    return zoo.resolve_model("espcn", 2)


@pytest.fixture(scope="module")
def reference(card):
    with create_backend("torch", card, threads=1, precision="fp32") as backend:
        yield backend.run


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    fakes = fake_gpu.install(monkeypatch)
    yield fakes
    fakes.check()


def _frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(int) - b).max()) <= 1


def _backend(card, **options):
    return cuda_backend.CudaBackend(card, precision="fp32", **options)


# -- the cache itself ----------------------------------------------------------------------------
def test_the_least_recently_used_graph_is_evicted_after_the_device_is_done():
    from streamsr.lru import LRUCache

    log: list[str] = []
    cache = LRUCache(2, on_evict=lambda graph: log.append(f"sync, drop {graph}"))
    for key in ("a", "b", "a", "c"):  # "a" used again: "b" is the least recently used
        cache.get_or_create(key, lambda k=key: log.append(f"make {k}") or k.upper())
    assert cache.keys() == ["a", "c"] and cache.evictions == 1
    assert log == ["make a", "make b", "sync, drop B", "make c"]  # synchronised before "c" was made
    assert cache.get_or_create("a", lambda: pytest.fail("a is cached")) == "A"
    with pytest.raises(ValueError):
        LRUCache(0)


# -- the backend --------------------------------------------------------------------------------
def test_graphs_replay_each_batch_in_flight_as_its_own_result(gpu, card, reference):
    backend = _backend(card)
    inputs = [_frames(2, 24, 32, seed=k) for k in range(4)]
    held = [backend.submit(x) for x in inputs[:3]]  # one more than in_flight
    results = [p.result() for p in held] + [backend.submit(inputs[3]).result()]
    for x, y in zip(inputs, results):
        assert _close(y, reference(x))
    assert len(gpu.cuda.captures) == 1 and gpu.cuda.captures[0].replays == 4
    backend.close()


def test_graphs_are_capped_least_recently_used_first(gpu, card, reference, monkeypatch):
    monkeypatch.setattr(cuda_backend, "MAX_GRAPHS", 2)
    backend = _backend(card)
    shapes = [(1, 24, 32), (2, 24, 32), (1, 24, 32), (1, 16, 40), (1, 24, 32)]
    for k, shape in enumerate(shapes):
        x = _frames(*shape, seed=k)
        assert _close(backend.run(x), reference(x))
    # (1, 24, 32) stayed in use, so the third shape evicted (2, 24, 32), not it: three captures
    assert len(gpu.cuda.captures) == 3 and len(backend._graphs) == 2
    backend.close()


def test_graphs_share_one_memory_pool(gpu, card):
    backend = _backend(card)
    for k, shape in enumerate([(1, 24, 32), (2, 24, 32), (1, 16, 40)]):
        backend.run(_frames(*shape, seed=k))
    pools = {graph.pool for graph in gpu.cuda.captures}
    assert len(gpu.cuda.captures) == 3 and len(pools) == 1 and None not in pools
    backend.close()


def test_tiles_run_eagerly_without_a_graph_per_tile_shape(gpu, card, reference):
    backend = _backend(card)
    big = _frames(2, 100, 130, seed=5)
    backend.max_pixels = 2 * 72 * 72  # tiles of 24 kept pixels: several shapes, odd ones at the borders
    assert _close(backend.run(big), reference(big))
    assert gpu.cuda.captures == []
    backend.max_pixels = None
    assert _close(backend.run(big), reference(big))
    assert len(gpu.cuda.captures) == 1  # whole frames still go through a graph
    backend.close()


def test_without_graphs_nothing_is_captured(gpu, card, reference):
    backend = _backend(card, cuda_graphs=False)
    x = _frames(2, 24, 32, seed=9)
    assert _close(backend.run(x), reference(x))
    assert gpu.cuda.captures == []
    backend.close()


def test_full_range_luma_is_mapped_as_on_the_cpu(gpu, card):
    """A JPEG-range camera's luma reaches the model on the GPU exactly as on the CPU (colour.LumaScale)."""
    from streamsr.colour import LumaScale

    full = LumaScale(8, full_range=True)
    x = _frames(2, 24, 32, seed=9)
    with create_backend("torch", card, threads=1, precision="fp32") as cpu:
        cpu.luma = full
        expected = cpu.run(x)
        cpu.luma = LumaScale()
        limited = cpu.run(x)
    backend = _backend(card)
    backend.luma = full
    out = backend.run(x)
    assert _close(out, expected) and not _close(out, limited)
    backend.close()
