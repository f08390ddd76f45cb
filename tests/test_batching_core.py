"""The queue and batching core that files and live feeds share (pipeline/queues.py,
pipeline/batcher.py): what the live hub needs of it, beside what tests/test_pipeline.py asks
for files."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from streamsr.livepipe.queue import NewestQueue
from streamsr.pipeline.batcher import batch_key, batch_limit, by_key, gather
from streamsr.pipeline.queues import StageQueue
from streamsr.types import Frame


def frame(i: int, size: tuple[int, int] = (8, 6), captured: float | None = None, dtype=np.uint8) -> Frame:
    w, h = size
    return Frame(index=i, planes=(np.zeros((h, w), dtype), np.zeros((h // 2, w // 2), dtype),
                                  np.zeros((h // 2, w // 2), dtype)), captured_at=captured)


# -- the queue under the live policy ----------------------------------------------------------
def test_live_queue_never_blocks_and_reports_each_drop_count() -> None:
    reports: list[int] = []
    q = NewestQueue(2, reports.append)
    assert isinstance(q, StageQueue) and q.policy == "drop_oldest"
    for i in range(3):
        q.put(i)
    t0 = time.monotonic()
    for i in range(3, 10):
        q.put(i)  # no consumer: still returns at once
    assert time.monotonic() - t0 < 0.5
    assert reports == [1] * 8 and q.dropped == 8
    assert [q.pop(), q.pop(), q.pop()] == [8, 9, None] and len(q) == 0


def test_live_queue_wait_pop_times_out_with_none() -> None:
    q = NewestQueue(2, lambda n: None)
    t0 = time.monotonic()
    assert q.wait_pop(0.1) is None
    assert 0.08 < time.monotonic() - t0 < 1.0
    q.put("x")
    assert q.wait_pop(0.1) == "x"


def test_a_shared_condition_wakes_one_waiter_for_any_queue() -> None:
    ready = threading.Condition()
    queues = [NewestQueue(2, lambda n: None, ready) for _ in range(3)]
    woke: list[float] = []

    def waiter() -> None:
        with ready:
            t0 = time.monotonic()
            ready.wait(5.0)
            woke.append(time.monotonic() - t0)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    queues[2].put("frame")
    t.join(timeout=5)
    assert woke and woke[0] < 2.0 and queues[2].pop() == "frame"


def test_the_stop_event_is_optional_and_watched_when_given() -> None:
    from streamsr.pipeline.queues import Stopped

    stop = threading.Event()
    watched, free = StageQueue(2, stop), StageQueue(2)
    stop.set()
    with pytest.raises(Stopped):
        watched.put(1)
    free.put(1)
    assert free.get(timeout=0.1) == 1


# -- batching ---------------------------------------------------------------------------------
def test_gather_takes_at_most_one_frame_per_queue_in_queue_order() -> None:
    ready, stop = threading.Condition(), threading.Event()
    queues = [NewestQueue(4, lambda n: None, ready) for _ in range(3)]
    for i, q in enumerate(queues):
        q.put(frame(10 * i))
        q.put(frame(10 * i + 1))
    got = gather(queues, max_batch=4, max_wait_s=0.5, ready=ready, stop=stop)
    assert [(i, f.index) for i, f in got] == [(0, 0), (1, 10), (2, 20)]
    got = gather(queues, max_batch=2, max_wait_s=0.5, ready=ready, stop=stop)
    assert [(i, f.index) for i, f in got] == [(0, 1), (1, 11)]


def test_gather_waits_at_most_max_wait_for_the_other_queues() -> None:
    ready, stop = threading.Condition(), threading.Event()
    queues = [NewestQueue(2, lambda n: None, ready) for _ in range(2)]
    queues[1].put(frame(5))
    t0 = time.monotonic()
    got = gather(queues, max_batch=4, max_wait_s=0.1, ready=ready, stop=stop)
    assert [(i, f.index) for i, f in got] == [(1, 5)] and 0.09 < time.monotonic() - t0 < 1.0


def test_gather_returns_nothing_once_stopped() -> None:
    ready, stop = threading.Condition(), threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert gather([NewestQueue(2, lambda n: None, ready)], 4, 0.01, ready, stop) == []


def test_by_key_groups_sizes_and_types_oldest_first() -> None:
    items = [("a", frame(0, (8, 6), 3.0)), ("b", frame(1, (16, 12), 1.0)), ("c", frame(2, (8, 6), 2.0)),
             ("d", frame(3, (8, 6), 0.5, np.uint16))]
    groups = by_key(items)
    assert [[tag for tag, _ in g] for g in groups] == [["c", "a"], ["b"], ["d"]]
    assert all(len({batch_key(f) for _, f in g}) == 1 for g in groups)


@pytest.mark.parametrize("max_batch", [1, 4, 64])
def test_batch_limit_is_the_file_rule_and_the_live_rule(max_batch: int) -> None:
    """Files: ``min(max_batch, max(1, max_pixels // pixels))``; live: ``max(1, min(max_batch,
    int(room / cost)))``, room the time left under the ceiling. The one function is both."""
    for max_pixels in (1, 99, 100 * 100, 3 * 100 * 100 + 7, 1 << 40):
        for pixels in (1, 640 * 360, 100 * 100, 3840 * 2160):
            assert batch_limit(max_batch, max_pixels, pixels) == min(max_batch, max(1, max_pixels // pixels))
    rng = np.random.default_rng(0)
    for room, cost in zip(rng.uniform(-0.5, 0.5, 500), rng.uniform(1e-6, 0.05, 500)):
        assert batch_limit(max_batch, room, cost) == max(1, min(max_batch, int(room / cost)))
    assert batch_limit(max_batch, 1.0, 0.1) == min(max_batch, 10)  # where // would say 9
