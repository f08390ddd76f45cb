"""Bounded hand-off between stages. Every wait has a timeout and watches one stop event."""
from __future__ import annotations

import queue
import threading
from typing import Any, Literal

QueuePolicy = Literal["block", "drop_oldest"]
POLL_S = 0.05


class Stopped(Exception):
    """Raised inside a stage when another stage asked everything to stop."""


class EndOfStream:
    """The sentinel that follows the last item."""


END = EndOfStream()


def item_bytes(item: Any) -> int:
    """The array bytes a frame carries (planes, kept source planes, alpha); 0 for anything else."""
    total = 0
    for name in ("planes", "source_planes"):
        for plane in getattr(item, name, None) or ():
            total += getattr(plane, "nbytes", 0)
    return total + getattr(getattr(item, "alpha", None), "nbytes", 0)


class StageQueue:
    """A bounded queue with an explicit full-queue policy.

    ``block`` (files) waits for room and never loses an item; ``drop_oldest`` (live feeds)
    discards the oldest waiting item to make room, and counts it. ``max_bytes`` also bounds
    the frame data waiting (image folders mix sizes): a put waits while the queue is not
    empty and the item would take it past ``max_bytes`` (one item always fits).
    """

    def __init__(self, maxsize: int, stop: threading.Event, policy: QueuePolicy = "block",
                 max_bytes: int | None = None) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._stop = stop
        self.policy = policy
        self.dropped = 0
        self.max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self.peak_bytes = 0

    def put(self, item: Any) -> None:
        if self.max_bytes is not None and item is not END:
            size = item_bytes(item)
            self._wait_for_room(size)
            with self._lock:
                self._bytes += size
                self.peak_bytes = max(self.peak_bytes, self._bytes)
        self._put(item)

    def _wait_for_room(self, size: int) -> None:
        while True:
            if self._stop.is_set():
                raise Stopped
            with self._lock:
                if self._bytes == 0 or self._bytes + size <= self.max_bytes:
                    return
            self._stop.wait(POLL_S / 10)

    def _put(self, item: Any) -> None:
        if self.policy == "drop_oldest" and item is not END:
            while True:
                if self._stop.is_set():
                    raise Stopped
                try:
                    self._q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        dropped = self._q.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        continue
                    if self.max_bytes is not None:
                        with self._lock:
                            self._bytes -= item_bytes(dropped)
        while True:
            if self._stop.is_set():
                raise Stopped
            try:
                self._q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def get(self, timeout: float | None = None) -> Any:
        """The next item; ``queue.Empty`` if ``timeout`` passes first."""
        waited = 0.0
        while True:
            if self._stop.is_set():
                raise Stopped
            try:
                item = self._q.get(timeout=POLL_S if timeout is None else min(POLL_S, max(timeout - waited, 0.0)))
            except queue.Empty:
                waited += POLL_S
                if timeout is not None and waited >= timeout:
                    raise
                continue
            if self.max_bytes is not None and item is not END:
                with self._lock:
                    self._bytes -= item_bytes(item)
            return item

    def qsize(self) -> int:
        return self._q.qsize()
