"""Bounded hand-off between stages, for files and live feeds alike.

One queue, two policies: ``block`` (files: never lose a frame) and ``drop_oldest`` (live
feeds: bounded latency, every drop counted). Every wait has a timeout and watches the stop
event when there is one, so a stage never hangs on a queue after another stage failed.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
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
    """A bounded FIFO with an explicit full-queue policy.

    ``block`` waits for room and never loses an item; ``drop_oldest`` discards the oldest
    waiting item to make room, counts it in ``dropped`` and tells ``on_drop(n)``. The end
    marker is never dropped: it waits for room under either policy. ``max_bytes`` also bounds
    the frame data waiting (image folders mix sizes): a put waits while the queue is not empty
    and the item would take it past ``max_bytes`` (one item always fits).

    ``stop``: when set, every waiting put or get raises ``Stopped`` (None: the caller watches
    its own). ``notify``: a condition shared by several queues, so that one consumer can wait
    for the first item in any of them (the live hub's inference thread).
    """

    def __init__(self, maxsize: int, stop: threading.Event | None = None, policy: QueuePolicy = "block",
                 max_bytes: int | None = None, on_drop: Callable[[int], None] | None = None,
                 notify: threading.Condition | None = None) -> None:
        self.maxsize = maxsize
        self.policy = policy
        self.max_bytes = max_bytes
        self.dropped = 0
        self.peak_bytes = 0
        self._items: deque[Any] = deque()
        self._bytes = 0
        self._stop = stop
        self._on_drop = on_drop
        self._cond = notify or threading.Condition()

    # -- put ------------------------------------------------------------------------------------
    def put(self, item: Any) -> None:
        size = item_bytes(item) if self.max_bytes is not None and item is not END else 0
        dropping = self.policy == "drop_oldest" and item is not END
        dropped = []
        with self._cond:
            while True:
                self._check_stop()
                if self._bytes_fit(size):
                    if len(self._items) < self.maxsize:
                        break
                    if dropping:
                        dropped.append(self._take())
                        continue
                self._cond.wait(POLL_S)
            self._items.append(item)
            self._bytes += size
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self.dropped += len(dropped)
            self._cond.notify_all()
        if dropped and self._on_drop is not None:
            self._on_drop(len(dropped))

    def _bytes_fit(self, size: int) -> bool:
        return self.max_bytes is None or self._bytes == 0 or self._bytes + size <= self.max_bytes

    # -- get ------------------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Any:
        """The next item, waiting for one; ``queue.Empty`` if ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._check_stop()
                if self._items:
                    return self._take()
                wait = POLL_S
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        raise queue.Empty
                self._cond.wait(wait)

    def pop(self) -> Any | None:
        """The next item, or None at once if there is none."""
        with self._cond:
            return self._take() if self._items else None

    def wait_pop(self, timeout: float) -> Any | None:
        """The next item, waiting up to ``timeout`` once; None if none came (or a shared
        ``notify`` woke the wait for another queue's item)."""
        with self._cond:  # checked under the condition, so a put in between cannot be missed
            if not self._items:
                self._cond.wait(timeout)
            return self._take() if self._items else None

    def _take(self) -> Any:
        item = self._items.popleft()
        if self.max_bytes is not None and item is not END:
            self._bytes -= item_bytes(item)
        self._cond.notify_all()  # a put may be waiting for room
        return item

    def _check_stop(self) -> None:
        if self._stop is not None and self._stop.is_set():
            raise Stopped

    def qsize(self) -> int:
        return len(self._items)

    def __len__(self) -> int:
        return len(self._items)
