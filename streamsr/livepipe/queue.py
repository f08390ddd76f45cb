"""The live queue policy: bounded, and when full the oldest item makes room (each drop counted)."""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from streamsr.types import Frame


class NewestQueue:
    """A bounded FIFO that drops its oldest item when full; ``notify`` wakes a shared waiter."""

    def __init__(self, maxsize: int, on_drop: Callable[[int], None], notify: threading.Condition | None = None):
        self._items: deque[Frame] = deque()
        self.maxsize = maxsize
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._ready = notify or threading.Condition()

    def put(self, item: Frame) -> None:
        dropped = 0
        with self._lock:
            while len(self._items) >= self.maxsize:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
        if dropped:
            self._on_drop(dropped)
        with self._ready:
            self._ready.notify_all()

    def pop(self) -> Frame | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def wait_pop(self, timeout: float) -> Frame | None:
        with self._ready:  # checked under the condition, so a put in between cannot be missed
            item = self.pop()
            if item is None:
                self._ready.wait(timeout)
                item = self.pop()
        return item

    def __len__(self) -> int:
        return len(self._items)
