"""Batching, for files and live feeds: frames of one size and sample type go to the backend
together, at most ``max_batch`` of them, and a batch waits at most ``max_wait_s`` after its
first frame for more.

Files (``batches``) take frames from one queue in order: a frame of another size ends the batch
and starts the next one, so the output keeps the input's order. Live feeds (``gather``) take at
most one frame from each camera's queue, then group the frames by size (``by_key``); the hub
then cuts each group to what fits its latency ceiling. Both cut a batch to a budget with
``batch_limit``: pixels for files (``max_pixels``, a memory bound), seconds for live feeds.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from streamsr.pipeline.queues import END, StageQueue
from streamsr.types import Frame

T = TypeVar("T")


def batch_key(frame: Frame) -> tuple[object, ...]:
    """Frames batch together only when this is equal: luma size and sample type."""
    return frame.size, frame.planes[0].dtype


def batch_limit(max_batch: int, budget: float, cost: float) -> int:
    """How many frames of ``cost`` each fit ``budget``: at least one, at most ``max_batch``
    (a single frame over the budget still runs: tiled by the backend, or late and counted)."""
    return max(1, min(max_batch, int(budget / cost)))


def batches(source: StageQueue, max_batch: int, max_wait_s: float,
            max_pixels: int | None = None) -> Iterator[list[Frame]]:
    """Yield lists of same-sized frames in arrival order until the end sentinel, each of at most
    ``max_batch`` frames and ``max_pixels`` input pixels."""
    held: Frame | None = None
    ended = False
    while not ended:
        first = held if held is not None else source.get()
        held = None
        if first is END:
            return
        batch = [first]
        pixels = first.size[0] * first.size[1]
        limit = max_batch if max_pixels is None else batch_limit(max_batch, max_pixels, max(1, pixels))
        deadline = time.monotonic() + max_wait_s
        while len(batch) < limit:
            try:
                item = source.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if item is END:
                ended = True
                break
            if batch_key(item) != batch_key(first):
                held = item
                break
            batch.append(item)
        yield batch


def gather(queues: Sequence[StageQueue], max_batch: int, max_wait_s: float, ready: threading.Condition,
           stop: threading.Event) -> list[tuple[int, Any]]:
    """At most one item from each queue (and ``max_batch`` in all) as (queue index, item).

    Returns when every queue gave one, or ``max_wait_s`` after the first item came; the queues
    share ``ready``, which a put notifies. Empty only when ``stop`` is set.
    """
    got: list[tuple[int, Any]] = []
    deadline: float | None = None
    while not stop.is_set():
        taken = {i for i, _ in got}
        for i, q in enumerate(queues):
            if len(got) >= max_batch:
                break
            if i in taken:
                continue
            item = q.pop()
            if item is not None:
                got.append((i, item))
        now = time.monotonic()
        if got and deadline is None:
            deadline = now + max_wait_s
        if len(got) >= min(max_batch, len(queues)) or (deadline is not None and now >= deadline):
            return got
        with ready:
            ready.wait(0.05 if deadline is None else max(0.0, deadline - now))
    return got


def by_key(items: Iterable[tuple[T, Frame]]) -> list[list[tuple[T, Frame]]]:
    """(tag, frame) pairs grouped by ``batch_key``, groups in order of their first frame, each
    group oldest capture first."""
    groups: dict[tuple[object, ...], list[tuple[T, Frame]]] = {}
    for tag, frame in items:
        groups.setdefault(batch_key(frame), []).append((tag, frame))
    for group in groups.values():
        group.sort(key=lambda tf: tf[1].captured_at or 0.0)
    return list(groups.values())
