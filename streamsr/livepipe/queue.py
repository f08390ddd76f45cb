"""The live queue policy: bounded, and when full the oldest item makes room (each drop counted).

It is the file pipeline's queue (pipeline/queues.py) with the ``drop_oldest`` policy; live
stages watch their own stop event, so the queue has none.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from streamsr.pipeline.queues import StageQueue


class NewestQueue(StageQueue):
    """A bounded FIFO that drops its oldest item when full; ``notify`` wakes a shared waiter."""

    def __init__(self, maxsize: int, on_drop: Callable[[int], None], notify: threading.Condition | None = None):
        super().__init__(maxsize, policy="drop_oldest", on_drop=on_drop, notify=notify)
