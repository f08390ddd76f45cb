"""The memory budget's logic: batch cap, tiling decision, bounded queues, LRU eviction.

Peak memory itself is measured by benchmarks/peak_memory.py (a process per case), not here.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from streamsr.errors import ConfigError
from streamsr.lru import LRUCache
from streamsr.memory import GiB, MiB, default_budget, parse_size, pixel_cost, plan_memory
from streamsr.pipeline.batcher import batches
from streamsr.pipeline.queues import END, StageQueue, item_bytes
from streamsr.types import Frame, ModelCard

ESPCN = ModelCard(name="espcn_x2", arch="espcn", scale=2, colour="y", params=0, macs_per_pixel=21184,
                  onnx="x.onnx", arch_kwargs={"features": [64, 32]})


def test_default_budget_is_a_share_of_available_memory():
    assert default_budget(available=4 * GiB) == 1 * GiB
    assert default_budget(available=64 * GiB) == 2 * GiB  # capped
    assert default_budget(available=100 * MiB) == 128 * MiB  # floor


def test_parse_size():
    assert parse_size("2G") == 2 * GiB and parse_size("800M") == 800 * MiB and parse_size("1.5GiB") == int(1.5 * GiB)
    for bad in ("lots", "-1G", "10K"):
        with pytest.raises(ConfigError):
            parse_size(bad)


def test_huge_batch_is_capped():
    """--batch 100000 on 1080p: capped to what fits (it used to decode-queue 200000 frames)."""
    plan = plan_memory(2 * GiB, 1920, 1080, 2, ESPCN, batch=100000)
    assert plan.max_batch == 1
    assert plan.queue_frames <= 8
    small = plan_memory(2 * GiB, 320, 240, 2, ESPCN, batch=100000)
    assert 1 < small.max_batch < 100000
    assert small.max_batch * 320 * 240 <= small.max_pixels
    assert plan_memory(2 * GiB, 320, 240, 2, ESPCN, batch=3).max_batch == 3  # never more than asked


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160), (4000, 3000)])
@pytest.mark.parametrize("in_flight", [1, 2])
def test_large_frames_are_tiled_within_budget(size, in_flight):
    budget = 2 * GiB
    plan = plan_memory(budget, *size, 2, ESPCN, in_flight=in_flight)
    working = plan.max_pixels * pixel_cost(ESPCN) * in_flight
    assert working <= budget // 2
    assert plan.tiled == (size[0] * size[1] > plan.max_pixels)
    assert plan.expected_bytes <= budget * 1.2  # two frames per queue at least, whatever the budget
    assert plan_memory(64 * GiB, *size, 2, ESPCN).tiled is False  # a big budget runs whole frames


def test_user_max_pixels_is_an_upper_bound():
    assert plan_memory(2 * GiB, 640, 480, 2, ESPCN, max_pixels=100_000).max_pixels == 100_000


def test_deeper_samples_cost_more():
    assert plan_memory(GiB, 1920, 1080, 2, ESPCN, sample_bytes=2).max_pixels \
        <= plan_memory(GiB, 1920, 1080, 2, ESPCN, sample_bytes=1).max_pixels


def test_lru_evicts_least_recently_used():
    evicted = []
    cache: LRUCache[tuple[int, int], str] = LRUCache(2, on_evict=evicted.append)
    cache.get_or_create((1, 1), lambda: "a")
    cache.get_or_create((2, 2), lambda: "b")
    cache.get_or_create((1, 1), lambda: "never")  # a hit: (1, 1) is now the most recent
    cache.get_or_create((3, 3), lambda: "c")
    assert evicted == ["b"] and len(cache) == 2 and (1, 1) in cache and (2, 2) not in cache


def test_openvino_keeps_few_compiled_shapes(tmp_path):
    pytest.importorskip("openvino")
    from streamsr.backends.openvino_backend import SHAPE_CACHE, OpenVinoBackend
    from tiny_model import write_tiny_model

    backend = OpenVinoBackend(write_tiny_model(tmp_path, scale=2), threads=1)
    for side in range(16, 16 + 2 * (SHAPE_CACHE + 3), 2):  # a folder of images, every one its own size
        backend.run(np.zeros((1, side, side), np.uint8))
        backend.submit(np.zeros((1, side, side), np.uint8)).result()
    assert len(backend._sync) == SHAPE_CACHE and len(backend._rings) == SHAPE_CACHE
    backend.close()


def frame(i: int, h: int = 100, w: int = 100) -> Frame:
    return Frame(index=i, planes=(np.zeros((h, w), np.uint8), np.zeros((h // 2, w // 2), np.uint8),
                                  np.zeros((h // 2, w // 2), np.uint8)))


def test_queue_is_bounded_in_bytes():
    stop = threading.Event()
    q = StageQueue(100, stop, max_bytes=3 * item_bytes(frame(0)))
    for i in range(3):
        q.put(frame(i))
    blocked = threading.Thread(target=q.put, args=(frame(3),), daemon=True)
    blocked.start()
    time.sleep(0.1)
    assert blocked.is_alive() and q.qsize() == 3  # the fourth frame waits for room
    assert q.get().index == 0
    blocked.join(timeout=1)
    assert not blocked.is_alive() and q.qsize() == 3
    assert q.peak_bytes == 3 * item_bytes(frame(0))


def test_one_big_item_always_fits():
    q = StageQueue(8, threading.Event(), max_bytes=10)
    q.put(frame(0))  # far over 10 bytes, but the queue is empty
    assert q.get().index == 0


def test_batches_are_bounded_in_pixels():
    stop = threading.Event()
    q = StageQueue(100, stop)
    for i in range(10):
        q.put(frame(i))
    q.put(END)
    sizes = [len(b) for b in batches(q, max_batch=100, max_wait_s=0.01, max_pixels=3 * 100 * 100)]
    assert sizes == [3, 3, 3, 1]


def test_enhance_caps_batch_and_tiles_under_a_small_budget(clip_factory, model_args, run_cli, tmp_path):
    """End to end: --batch 100000 and a 128 MiB budget still write every frame, in order,
    with the batch capped and the frames tiled (the plan is printed with the results)."""
    from synth import decode_video, read_index

    clip = clip_factory("cfr30.mp4", frames=30)
    out = tmp_path / "up.mp4"
    r = run_cli("enhance", clip.path, "-o", out, *model_args(2), "--batch", "100000", "--memory-budget", "128M",
                "--max-pixels", "10000")
    assert r.code == 0, r.err
    assert [read_index(y, clip.size, 2) for y in decode_video(out).lumas] == list(range(30))
    assert "budget 0.12 GiB: batch 1, tiles of 0.01 MP, queues" in r.out
