"""One thread and one bounded queue per (camera, output), so a slow or failing output never
holds back the others.

The camera's output thread hands each frame to every output's queue and moves on. Each queue
keeps the newest frames (``queue`` drops when the output is slower than the camera), and a frame
that waited past the latency ceiling is not written (``late``); both are counted per output. An
output that raises is logged once per distinct error (and once when it works again), and every
error is counted. A dead RTSP server that blocks its writer for seconds stalls only that writer.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Protocol

from streamsr.livepipe.queue import NewestQueue
from streamsr.types import Frame
from streamsr.urls import mask_text

if TYPE_CHECKING:
    from streamsr.livepipe.metrics import CameraMetrics

log = logging.getLogger(__name__)


class LiveOutput(Protocol):
    """Where enhanced frames go. ``write`` is called from the (camera, output) pair's own thread."""

    def write(self, camera: str, frame: Frame) -> None: ...

    def close(self) -> None: ...


def output_labels(outputs: list[LiveOutput]) -> list[str]:
    """A short unique name per output, for logs and metrics: its ``label`` (or its class name),
    with ``#2``, ``#3``... when two are alike."""
    labels: list[str] = []
    for out in outputs:
        base = getattr(out, "label", None) or re.sub(r"(?<!^)(?=[A-Z])", "_", type(out).__name__).lower()
        label, n = base, 2
        while label in labels:
            label, n = f"{base}#{n}", n + 1
        labels.append(label)
    return labels


class OutputWorker:
    """Writes one camera's frames to one output, from its own thread and bounded queue."""

    def __init__(self, camera: str, output: LiveOutput, label: str, metrics: CameraMetrics,
                 queue_size: int, ceiling_s: float) -> None:
        self.camera = camera
        self.output = output
        self.label = label
        self.metrics = metrics
        self.ceiling_s = ceiling_s
        self.queue = NewestQueue(queue_size, lambda n: metrics.output_dropped(label, "queue", n))
        self.upstream_done = threading.Event()  # set when no more frames will be put
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._loop, name=f"streamsr-out-{camera}-{label}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, frame: Frame) -> None:
        self.queue.put(frame)

    def _loop(self) -> None:
        while True:
            frame = self.queue.wait_pop(0.05)
            if frame is None:
                if self.upstream_done.is_set() and not len(self.queue):
                    return
                continue
            if time.monotonic() - (frame.captured_at or 0.0) > self.ceiling_s:
                self.metrics.output_dropped(self.label, "late")
                continue
            self._write(frame)

    def _write(self, frame: Frame) -> None:
        try:
            self.output.write(self.camera, frame)
        except Exception as e:  # noqa: BLE001 - one output's error never stops the others
            self.metrics.output_error(self.label)
            reason = mask_text(f"{type(e).__name__}: {e}")
            if self.failure != reason:
                log.warning("%s: output %s failed: %s", self.camera, self.label, reason)
                self.failure = reason
            return
        if self.failure is not None:
            log.warning("%s: output %s works again", self.camera, self.label)
            self.failure = None
