"""Groups frames of one size into batches of at most ``max_batch``, waiting at most ``max_wait_s``."""
from __future__ import annotations

import queue
import time
from collections.abc import Iterator

from streamsr.pipeline.queues import END, StageQueue
from streamsr.types import Frame


def batches(source: StageQueue, max_batch: int, max_wait_s: float) -> Iterator[list[Frame]]:
    """Yield lists of same-sized frames in arrival order until the end sentinel."""
    held: Frame | None = None
    ended = False
    while not ended:
        first = held if held is not None else source.get()
        held = None
        if first is END:
            return
        batch = [first]
        deadline = time.monotonic() + max_wait_s
        while len(batch) < max_batch:
            try:
                item = source.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if item is END:
                ended = True
                break
            if item.size != first.size:
                held = item
                break
            batch.append(item)
        yield batch
