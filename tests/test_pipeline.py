"""The threaded pipeline with fake sources, backends and sinks: failures, batching, queues, stats."""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from streamsr.errors import InputError, OutputError, PipelineError
from streamsr.pipeline.batcher import batches
from streamsr.pipeline.pipeline import Pipeline, PipelinePolicy
from streamsr.pipeline.queues import END, StageQueue, Stopped
from streamsr.types import Frame

pytestmark = pytest.mark.timeout(20)


def frame(index: int, size: tuple[int, int] = (8, 6)) -> Frame:
    w, h = size
    y = np.full((h, w), index % 256, np.uint8)
    c = np.full(((h + 1) // 2, (w + 1) // 2), 128, np.uint8)
    return Frame(index=index, planes=(y, c, c.copy()), pts=index)


class FakeSource:
    """Frames 0..n-1 (n=None: forever), optionally of changing sizes, failing at ``fail_at``."""

    def __init__(self, n: int | None = 10, sizes=None, fail_at: int | None = None,
                 error: BaseException | None = None, delay_s: float = 0.0) -> None:
        self.n, self.sizes, self.fail_at, self.delay_s = n, sizes, fail_at, delay_s
        self.error = error or RuntimeError("source exploded")
        self.produced = 0

    def __iter__(self) -> Iterator[Frame]:
        for i in itertools.count() if self.n is None else range(self.n):
            if i == self.fail_at:
                raise self.error
            if self.delay_s:
                time.sleep(self.delay_s)
            self.produced += 1
            yield frame(i, self.sizes[i] if self.sizes else (8, 6))


class FakeBackend:
    """Nearest-neighbour x2 on the Y planes; records each batch's (size, length, first index)."""

    def __init__(self, fail_on_call: int | None = None, error: BaseException | None = None,
                 delay_s: float = 0.0) -> None:
        self.fail_on_call, self.delay_s = fail_on_call, delay_s
        self.error = error or ValueError("backend exploded")
        self.calls: list[tuple[tuple[int, int], int]] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        if len(self.calls) + 1 == self.fail_on_call:
            raise self.error
        if self.delay_s:
            time.sleep(self.delay_s)
        self.calls.append(((batch.shape[2], batch.shape[1]), batch.shape[0]))
        return batch.repeat(2, axis=1).repeat(2, axis=2)


class FakeSink:
    def __init__(self, fail_at: int | None = None, error: BaseException | None = None, delay_s: float = 0.0) -> None:
        self.fail_at, self.delay_s = fail_at, delay_s
        self.error = error or OSError("disk full")
        self.indices: list[int] = []
        self.values: list[int] = []

    def write(self, f: Frame) -> None:
        if len(self.indices) == self.fail_at:
            raise self.error
        if self.delay_s:
            time.sleep(self.delay_s)
        self.indices.append(f.index)
        self.values.append(int(f.planes[0][0, 0]))


def no_stage_threads_left() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("streamsr-") and t.is_alive()]


# -- one stage fails: all stop, the cause is chained ------------------------------------------
@pytest.mark.parametrize(
    "stage, source, backend, sink, cause",
    [
        ("decode", FakeSource(n=None, fail_at=7), FakeBackend(), FakeSink(), RuntimeError),
        ("infer", FakeSource(n=None), FakeBackend(fail_on_call=4), FakeSink(), ValueError),
        ("encode", FakeSource(n=None), FakeBackend(), FakeSink(fail_at=3), OSError),
    ],
    ids=["source", "backend", "sink"],
)
def test_a_failing_stage_stops_all_and_is_chained(stage, source, backend, sink, cause):
    """Sources here never end on their own: the run can only finish because the failure
    stopped every stage (a stage blocked on a full queue included)."""
    with pytest.raises(PipelineError, match=f"{stage} stage failed") as info:
        Pipeline(source, backend, sink, PipelinePolicy(queue_size=2)).run()
    assert isinstance(info.value.__cause__, cause)
    assert no_stage_threads_left()


def test_slow_stages_around_a_failure_do_not_hang():
    source = FakeSource(n=None, delay_s=0.01)
    sink = FakeSink(fail_at=2, delay_s=0.05)
    t0 = time.monotonic()
    with pytest.raises(PipelineError) as info:
        Pipeline(source, FakeBackend(delay_s=0.02), sink, PipelinePolicy(queue_size=1)).run()
    assert isinstance(info.value.__cause__, OSError)
    assert time.monotonic() - t0 < 5
    assert no_stage_threads_left()


@pytest.mark.parametrize("where", ["source", "backend", "sink"])
def test_streamsr_errors_pass_through_as_themselves(where):
    error = InputError("input went away") if where != "sink" else OutputError("disk gone")
    source = FakeSource(n=None, fail_at=3, error=error) if where == "source" else FakeSource(n=None)
    backend = FakeBackend(fail_on_call=2, error=error) if where == "backend" else FakeBackend()
    sink = FakeSink(fail_at=1, error=error) if where == "sink" else FakeSink()
    with pytest.raises(type(error)) as info:
        Pipeline(source, backend, sink, PipelinePolicy(queue_size=2)).run()
    assert info.value is error
    assert no_stage_threads_left()


def test_failure_in_post_processing_is_an_encode_failure():
    def post(f: Frame) -> Frame:
        if f.index == 2:
            raise ZeroDivisionError("bad post")
        return f

    with pytest.raises(PipelineError, match="encode stage failed: ZeroDivisionError") as info:
        Pipeline(FakeSource(n=10), FakeBackend(), FakeSink(), post=post).run()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


# -- a normal run ------------------------------------------------------------------------------
def test_run_writes_every_frame_in_order_with_sane_stats():
    source, backend, sink = FakeSource(n=25, delay_s=0.001), FakeBackend(), FakeSink()
    done: list[int] = []
    stats = Pipeline(source, backend, sink, PipelinePolicy(max_batch=3, queue_size=4), on_frame=done.append).run()
    assert sink.indices == list(range(25))
    assert sink.values == list(range(25))  # each output is its own frame's picture
    assert done == list(range(1, 26))
    assert stats.frames == 25 and stats.dropped == 0
    assert stats.wall_s > 0 and stats.fps > 0
    assert set(stats.stage_ms_per_frame) == {"decode", "infer", "encode"}
    assert all(ms >= 0 for ms in stats.stage_ms_per_frame.values())
    assert stats.stage_ms_per_frame["decode"] >= 1.0 * 0.9  # the source sleeps 1 ms per frame
    assert stats.batches == len(backend.calls) and 9 <= stats.batches <= 25
    d = stats.to_dict()
    assert d["frames"] == 25 and d["fps"] > 0 and set(d["stage_ms_per_frame"]) == {"decode", "infer", "encode"}
    assert no_stage_threads_left()


def test_empty_source():
    stats = Pipeline(FakeSource(n=0), FakeBackend(), FakeSink()).run()
    assert stats.frames == 0 and stats.fps == 0.0


# -- batching ------------------------------------------------------------------------------------
A, B = (8, 6), (10, 4)


def filled(items) -> StageQueue:
    q = StageQueue(len(items) + 1, threading.Event())
    for item in items:
        q.put(item)
    q.put(END)
    return q


def test_batches_group_same_size_up_to_max_and_keep_order():
    sizes = [A] * 10 + [B] * 5 + [A] * 3
    frames = [frame(i, s) for i, s in enumerate(sizes)]
    got = list(batches(filled(frames), max_batch=4, max_wait_s=0.5))
    assert [len(b) for b in got] == [4, 4, 2, 4, 1, 3]
    assert [f.index for b in got for f in b] == list(range(18))
    assert all(len({f.size for f in b}) == 1 for b in got)


def test_batches_do_not_wait_past_max_wait():
    q = StageQueue(8, threading.Event())
    q.put(frame(0))
    t0 = time.monotonic()
    it = batches(q, max_batch=4, max_wait_s=0.1)
    first = next(it)
    assert [f.index for f in first] == [0]
    assert time.monotonic() - t0 < 1.0


def test_pipeline_batches_across_a_size_change():
    sizes = [A] * 7 + [B] * 6 + [A] * 2
    backend, sink = FakeBackend(), FakeSink()
    stats = Pipeline(FakeSource(n=len(sizes), sizes=sizes), backend, sink,
                     PipelinePolicy(max_batch=4, max_wait_s=0.2, queue_size=16)).run()
    assert sink.indices == list(range(len(sizes)))
    assert all(n <= 4 for _, n in backend.calls)
    # batches never mix sizes, and follow the input's runs of sizes
    runs = [(A, 7), (B, 6), (A, 2)]
    got = []
    for size, n in backend.calls:
        if got and got[-1][0] == size:
            got[-1] = (size, got[-1][1] + n)
        else:
            got.append((size, n))
    assert got == runs
    assert stats.batches == len(backend.calls)


# -- queue policies ----------------------------------------------------------------------------
def test_drop_oldest_counts_drops_and_keeps_the_newest():
    q = StageQueue(2, threading.Event(), "drop_oldest")
    for i in range(5):
        q.put(i)
    assert q.dropped == 3
    assert [q.get(timeout=0.1), q.get(timeout=0.1)] == [3, 4]


def test_drop_oldest_never_drops_the_end_marker():
    q = StageQueue(2, threading.Event(), "drop_oldest")
    q.put(0)
    q.put(1)
    done = threading.Thread(target=q.put, args=(END,))
    done.start()
    assert q.get(timeout=1) == 0
    done.join(timeout=2)
    assert [q.get(timeout=1), q.get(timeout=1)] == [1, END] and q.dropped == 0


def test_block_never_drops():
    q = StageQueue(2, threading.Event(), "block")
    got: list[int] = []

    def consume() -> None:
        while len(got) < 50:
            time.sleep(0.001)
            got.append(q.get(timeout=5))

    t = threading.Thread(target=consume)
    t.start()
    for i in range(50):
        q.put(i)
    t.join(timeout=10)
    assert got == list(range(50)) and q.dropped == 0


def test_blocked_put_and_get_give_up_when_stopped():
    stop = threading.Event()
    q = StageQueue(1, stop, "block")
    q.put(0)
    errors: list[BaseException] = []

    def blocked_put() -> None:
        try:
            q.put(1)
        except Stopped as e:
            errors.append(e)

    t = threading.Thread(target=blocked_put)
    t.start()
    time.sleep(0.1)
    stop.set()
    t.join(timeout=2)
    assert not t.is_alive() and len(errors) == 1
    with pytest.raises(Stopped):
        q.get()


def test_get_timeout_raises_empty():
    import queue

    q = StageQueue(1, threading.Event())
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert 0.15 < time.monotonic() - t0 < 2


@pytest.mark.parametrize("policy", ["drop_oldest", "block"])
def test_pipeline_queue_policy_with_a_slow_backend(policy):
    """A fast source and a slow backend: drop_oldest loses frames and counts every one of them;
    block loses none."""
    source, sink = FakeSource(n=60), FakeSink()
    stats = Pipeline(source, FakeBackend(delay_s=0.01), sink,
                     PipelinePolicy(queue_size=2, queue_policy=policy)).run()
    assert sink.indices == sorted(sink.indices)  # whatever is kept stays in order
    if policy == "block":
        assert stats.dropped == 0 and sink.indices == list(range(60))
    else:
        assert stats.dropped > 0
        assert stats.frames + stats.dropped == 60
        assert sink.indices[-1] == 59  # the newest frame is never the one dropped
