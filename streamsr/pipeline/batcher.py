"""Groups frames of one size (and sample type) into batches of at most ``max_batch`` frames and
``max_pixels`` input pixels (a single frame may exceed it: the backend tiles it), waiting at
most ``max_wait_s``."""
from __future__ import annotations

import queue
import time
from collections.abc import Iterator

from streamsr.pipeline.queues import END, StageQueue
from streamsr.types import Frame


def _key(frame: Frame) -> tuple[object, ...]:
    return frame.size, frame.planes[0].dtype


def batches(source: StageQueue, max_batch: int, max_wait_s: float,
            max_pixels: int | None = None) -> Iterator[list[Frame]]:
    """Yield lists of same-sized frames in arrival order until the end sentinel."""
    held: Frame | None = None
    ended = False
    while not ended:
        first = held if held is not None else source.get()
        held = None
        if first is END:
            return
        batch = [first]
        pixels = first.size[0] * first.size[1]
        limit = max_batch if max_pixels is None else min(max_batch, max(1, max_pixels // max(1, pixels)))
        deadline = time.monotonic() + max_wait_s
        while len(batch) < limit:
            try:
                item = source.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if item is END:
                ended = True
                break
            if _key(item) != _key(first):
                held = item
                break
            batch.append(item)
        yield batch
