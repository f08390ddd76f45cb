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


class StageQueue:
    """A bounded queue with an explicit full-queue policy.

    ``block`` (files) waits for room and never loses an item; ``drop_oldest`` (live feeds)
    discards the oldest waiting item to make room, and counts it.
    """

    def __init__(self, maxsize: int, stop: threading.Event, policy: QueuePolicy = "block") -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._stop = stop
        self.policy = policy
        self.dropped = 0

    def put(self, item: Any) -> None:
        if self.policy == "drop_oldest" and item is not END:
            while True:
                if self._stop.is_set():
                    raise Stopped
                try:
                    self._q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._q.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
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
                return self._q.get(timeout=POLL_S if timeout is None else min(POLL_S, max(timeout - waited, 0.0)))
            except queue.Empty:
                waited += POLL_S
                if timeout is not None and waited >= timeout:
                    raise

    def qsize(self) -> int:
        return self._q.qsize()
