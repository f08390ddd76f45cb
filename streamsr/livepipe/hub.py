"""Many cameras, one model: per-camera capture threads, one shared inference thread, per-camera outputs.

    camera thread (one per source) --newest-frames queue--+
    camera thread ...              --newest-frames queue--+-> inference thread (batches
                                                              equal-size frames across cameras)
      -> per-camera queue -> per-camera output thread: chroma, ceiling check, latency
      -> per-(camera, output) queue and thread: the output's write (streamsr.livepipe.outputs)

Live policy: every queue keeps the newest frames and drops the oldest (counted, reason
``queue``). A frame too old to finish inside the latency ceiling is dropped before inference
(``stale``); one that is over the ceiling when it reaches the outputs is dropped there
(``late``). So every frame shown is at most ``latency_ceiling_s`` old. One camera's failure
(its source reconnects on its own) or one output's error or slowness never stops the others.
A frame whose post-processing fails is dropped (``error``), counted, and logged at most once
every ``POST_ERROR_LOG_S`` seconds.

The queues and the batching are the file pipeline's (pipeline/queues.py with the
``drop_oldest`` policy, pipeline/batcher.py). What is live's own is here: a batch takes at most
one frame per camera, stale frames are dropped before inference, and batches are cut to what
finishes inside the ceiling.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from streamsr.backends.base import Backend
from streamsr.errors import ConfigError
from streamsr.livepipe.metrics import CameraMetrics
from streamsr.livepipe.outputs import LiveOutput, OutputWorker, output_labels
from streamsr.livepipe.queue import NewestQueue
from streamsr.pipeline.batcher import batch_limit, by_key, gather
from streamsr.pipeline.pipeline import with_luma
from streamsr.postprocess import finish
from streamsr.sources.live_source import LiveSource
from streamsr.types import Frame
from streamsr.urls import mask_text

log = logging.getLogger(__name__)


POST_ERROR_LOG_S = 10.0
__all__ = ["Camera", "LiveOutput", "LivePipeline", "LivePolicy", "NewestQueue"]


@dataclass(frozen=True)
class LivePolicy:
    max_batch: int = 4  # frames per inference call, across cameras
    max_wait_s: float = 0.002  # how long a partial batch waits for other cameras
    queue_size: int = 2  # per camera, before inference and before output
    latency_ceiling_s: float = 0.5  # capture to output; older frames are dropped, never shown
    keep_source_planes: bool = False  # outputs that show bicubic beside the model need them

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.queue_size < 1:
            raise ConfigError("batch and queue sizes must be at least 1")
        if self.latency_ceiling_s <= 0:
            raise ConfigError(f"the latency ceiling must be positive, not {self.latency_ceiling_s}")


class Camera:
    """One source, its capture thread and its metrics."""

    def __init__(self, source: LiveSource, outputs: Sequence[LiveOutput] = (), name: str | None = None) -> None:
        self.source = source
        self.name = name or source.name
        self.outputs = list(outputs)  # this camera's own outputs, besides the shared ones
        self.metrics = CameraMetrics(self.name, source.state)
        self.inbox: NewestQueue | None = None
        self.outbox: NewestQueue | None = None
        self.error: BaseException | None = None
        self.workers: list[OutputWorker] = []


class LivePipeline:
    def __init__(
        self,
        cameras: Sequence[Camera],
        backend: Backend,
        outputs: Sequence[LiveOutput] = (),
        policy: LivePolicy | None = None,
        post: Callable[[Frame], Frame] | None = None,
    ) -> None:
        names = [c.name for c in cameras]
        if not cameras:
            raise ConfigError("no camera to read")
        if len(set(names)) != len(names):
            raise ConfigError(f"camera names must be unique: {names}")
        self.cameras = list(cameras)
        self.backend = backend
        self.outputs = list(outputs)
        self.policy = policy or LivePolicy()
        self.scale = backend.card.scale
        self.post = post or (lambda f: finish(f, self.scale))
        self.stop_event = threading.Event()
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._costs: deque[float] = deque(maxlen=3)
        self.infer_s_per_frame = 0.0  # running estimate of the cost of one frame, for the stale check
        self.batches = 0
        self.batch_frames = 0
        self.error: BaseException | None = None
        for cam in self.cameras:
            m = cam.metrics
            cam.inbox = NewestQueue(self.policy.queue_size, lambda n, m=m: m.dropped("queue", n), self._ready)
            cam.outbox = NewestQueue(self.policy.queue_size, lambda n, m=m: m.dropped("queue", n))

    @property
    def metrics(self) -> list[CameraMetrics]:
        return [c.metrics for c in self.cameras]

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> LivePipeline:
        def spawn(target: Callable[..., None], name: str, *args: object) -> None:
            t = threading.Thread(target=target, args=args, name=name, daemon=True)
            t.start()
            self._threads.append(t)

        spawn(self._infer_loop, "streamsr-live-infer")
        for cam in self.cameras:
            outputs = self.outputs + cam.outputs
            cam.workers = [OutputWorker(cam.name, out, label, cam.metrics, self.policy.queue_size,
                                        self.policy.latency_ceiling_s)
                           for out, label in zip(outputs, output_labels(outputs))]
            for w in cam.workers:
                w.start()
                self._threads.append(w.thread)
            spawn(self._capture_loop, f"streamsr-capture-{cam.name}", cam)
            spawn(self._output_loop, f"streamsr-output-{cam.name}", cam)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        with self._ready:
            self._ready.notify_all()

    def join(self, timeout: float = 10.0) -> list[str]:
        """Wait for the threads to end; the names of those still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self._threads if t.is_alive()]

    def run(self, duration_s: float | None = None) -> None:
        """Start, run until ``stop()`` (or ``duration_s``), then stop and join."""
        self.start()
        try:
            self.stop_event.wait(duration_s)
        finally:
            self.stop()
            self.join()

    def __enter__(self) -> LivePipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join()

    # -- stages -----------------------------------------------------------------------------
    def _capture_loop(self, cam: Camera) -> None:
        try:
            for frame in cam.source.frames(self.stop_event):
                cam.metrics.captured(frame.captured_at or time.monotonic())
                cam.inbox.put(frame)
        except Exception as e:  # noqa: BLE001 - one camera's end never stops the others
            cam.error = e
            log.error("%s: camera stopped: %s", cam.name, mask_text(str(e)))
        else:
            if not self.stop_event.is_set():
                log.info("%s: source ended", cam.name)

    def _gather(self) -> list[tuple[Camera, Frame]]:
        """One frame from each camera that has one; waits a little for a fuller batch."""
        p = self.policy
        got = gather([c.inbox for c in self.cameras], p.max_batch, p.max_wait_s, self._ready, self.stop_event)
        return [(self.cameras[i], frame) for i, frame in got]

    def _infer_loop(self) -> None:
        last_run = time.monotonic()
        try:
            while not self.stop_event.is_set():
                got = self._gather()
                if not got:
                    continue
                now = time.monotonic()
                fresh = self._drop_stale(got, now, idle=now - last_run > 0.5)
                for group in by_key(fresh):  # frames of one size, oldest first
                    for batch in self._within_ceiling(group, now):
                        self._infer(batch)
                    last_run = time.monotonic()
        except Exception as e:  # noqa: BLE001 - the model failing stops everything, loudly
            self.error = e
            log.error("inference failed: %s", mask_text(f"{type(e).__name__}: {e}"))
            self.stop()

    def _drop_stale(self, got: list[tuple[Camera, Frame]], now: float, idle: bool) -> list[tuple[Camera, Frame]]:
        """The frames that could still make the ceiling if each ran alone; the others are dropped
        (``stale``). When nothing has run for a while (``idle``) the newest frame runs anyway, so
        that the cost estimate is measured again (load changes) instead of starving for ever."""
        fresh, stale = [], []
        for cam, frame in got:
            age = now - (frame.captured_at or now)
            (stale if age + self.infer_s_per_frame > self.policy.latency_ceiling_s else fresh).append((cam, frame))
        if not fresh and idle:
            newest = max(stale, key=lambda cf: cf[1].captured_at or 0.0)
            stale.remove(newest)
            fresh.append(newest)
        for cam, _ in stale:
            cam.metrics.dropped("stale")
        return fresh

    def _within_ceiling(self, group: list[tuple[Camera, Frame]], now: float) -> Iterator[list[tuple[Camera, Frame]]]:
        """Consecutive batches of ``group``, each as large as can finish inside the latency ceiling
        at the current cost per frame (read again after every batch)."""
        i = 0
        while i < len(group):
            oldest = time.monotonic() - (group[i][1].captured_at or now)
            n = batch_limit(self.policy.max_batch, self.policy.latency_ceiling_s - oldest,
                            max(self.infer_s_per_frame, 1e-6))
            yield group[i:i + n]
            i += n

    def _infer(self, group: list[tuple[Camera, Frame]]) -> None:
        t0 = time.monotonic()
        upscaled = self.backend.run(np.stack([f.planes[0] for _, f in group]))
        per_frame = (time.monotonic() - t0) / len(group)
        self._costs.append(per_frame)
        self.infer_s_per_frame = min(self._costs)  # one slow moment must not hide the usual cost
        self.batches += 1
        self.batch_frames += len(group)
        for (cam, frame), y in zip(group, upscaled):
            cam.outbox.put(with_luma(frame, y, self.policy.keep_source_planes))

    def _output_loop(self, cam: Camera) -> None:
        ceiling = self.policy.latency_ceiling_s
        post_errors = _Throttled(POST_ERROR_LOG_S)
        try:
            while not self.stop_event.is_set():
                frame = cam.outbox.wait_pop(0.05)
                if frame is None:
                    continue
                try:
                    frame = self.post(frame)
                except Exception as e:  # noqa: BLE001 - a bad frame is dropped and counted, the feed goes on
                    cam.metrics.postprocess_failed()
                    post_errors.log(f"{cam.name}: post-processing failed", mask_text(f"{type(e).__name__}: {e}"))
                    continue
                if time.monotonic() - (frame.captured_at or 0.0) > ceiling:
                    cam.metrics.dropped("late")
                    continue
                for worker in cam.workers:  # never blocks: each output has its own queue and thread
                    worker.put(frame)
                now = time.monotonic()
                cam.metrics.delivered(now - (frame.captured_at or now), now)
        finally:
            for worker in cam.workers:
                worker.upstream_done.set()  # they write what is queued, then end


class _Throttled:
    """Logs an error at once, then at most once per ``every_s`` seconds with the count in between."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last = -float("inf")
        self.suppressed = 0

    def log(self, what: str, reason: str) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.suppressed += 1
            return
        more = f" (and {self.suppressed} more time(s) since the last report)" if self.suppressed else ""
        log.error("%s: %s%s", what, reason, more)
        self.last, self.suppressed = now, 0
