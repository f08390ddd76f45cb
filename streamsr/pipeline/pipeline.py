"""decode thread -> bounded queue -> batcher + backend -> bounded queue -> sink thread.

The three stages overlap: PyAV, OpenCV and the inference engines release the GIL while
they work. Any stage's error stops all stages; ``run`` re-raises it with its cause.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from streamsr.backends.base import Backend, Done
from streamsr.colour import LumaScale
from streamsr.errors import PipelineError, StreamSRError
from streamsr.pipeline.batcher import batches
from streamsr.pipeline.queues import END, QueuePolicy, StageQueue, Stopped
from streamsr.pipeline.stats import RunStats, StageClock
from streamsr.types import Frame

log = logging.getLogger(__name__)

PostProcess = Callable[[Frame], Frame]
OnFrame = Callable[[int], None]


class FrameSink:
    """What the pipeline writes to; see streamsr.sinks."""

    def write(self, frame: Frame) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class PipelinePolicy:
    max_batch: int = 1
    max_wait_s: float = 0.005
    queue_size: int = 8
    queue_policy: QueuePolicy = "block"
    keep_source_planes: bool = False  # --compare needs the input beside the output
    queue_bytes: int | None = None  # frame data each queue may hold (streamsr.memory)
    max_pixels: int | None = None  # input pixels per batch (one larger frame is tiled by the backend)


def submit_batch(backend: Backend, frames: list[Frame]):
    """Hand the Y planes of same-sized frames to the backend; chroma is left for post-processing.

    ``submit`` is optional: anything with a synchronous ``run`` serves as a backend.
    """
    planes = np.stack([f.planes[0] for f in frames])
    luma = LumaScale(frames[0].bit_depth, frames[0].full_range)
    if getattr(backend, "luma", None) != luma:  # a folder may mix 8- and 16-bit images; images are full range
        backend.luma = luma
    if getattr(backend, "upscales_chroma", False):  # GPU backends: Y and Cb/Cr in one trip
        chroma = np.stack([np.stack(f.planes[1:]) for f in frames])
        return backend.submit_planes(planes, chroma)
    submit = getattr(backend, "submit", None)
    return submit(planes) if submit is not None else Done(backend.run(planes))


def collect_batch(pending, frames: list[Frame], keep_source: bool) -> list[Frame]:
    """Frames with the backend's planes: luma only, or (luma, Cb/Cr) from a GPU backend."""
    upscaled = pending.result()
    if isinstance(upscaled, tuple):
        ys, chroma = upscaled
        return [
            replace(f, planes=(y, c[0], c[1]), chroma_upscaled=True,
                    source_planes=f.planes if keep_source else None)
            for f, y, c in zip(frames, ys, chroma)
        ]
    return [with_luma(f, y, keep_source) for f, y in zip(frames, upscaled)]


def with_luma(frame: Frame, y: np.ndarray, keep_source: bool) -> Frame:
    """``frame`` with the model's luma ``y`` and its own chroma (upscaled later, in post-processing);
    its input planes kept in ``source_planes`` when ``keep_source`` (--compare, the live window)."""
    return replace(frame, planes=(y, frame.planes[1], frame.planes[2]), source_planes=frame.planes if keep_source else None)


class Pipeline:
    def __init__(
        self,
        source: Iterable[Frame],
        backend: Backend,
        sink: FrameSink,
        policy: PipelinePolicy | None = None,
        post: PostProcess | None = None,
        on_frame: OnFrame | None = None,
    ) -> None:
        self.source = source
        self.backend = backend
        self.sink = sink
        self.policy = policy or PipelinePolicy()
        self.post = post
        self.on_frame = on_frame
        self._stop = threading.Event()
        self._errors: list[tuple[str, BaseException]] = []
        self._clocks = {name: StageClock() for name in ("decode", "infer", "encode")}
        self._batches = 0
        self._written = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> RunStats:
        p = self.policy
        expect_batch = getattr(self.backend, "expect_batch", None)
        if expect_batch is not None:  # engines built per batch size (TensorRT) plan for ours
            expect_batch(p.max_batch)
        decoded = StageQueue(p.queue_size, self._stop, p.queue_policy, max_bytes=p.queue_bytes)
        inferred = StageQueue(p.queue_size, self._stop, "block", max_bytes=p.queue_bytes)
        stages = [("decode", self._decode, (decoded,)), ("infer", self._infer, (decoded, inferred)),
                  ("encode", self._encode, (inferred,))]
        finished = [threading.Event() for _ in stages]
        threads = [threading.Thread(target=self._guard, args=(name, body, done, *queues), name=f"streamsr-{name}")
                   for (name, body, queues), done in zip(stages, finished)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        try:
            _wait_all(finished)
        except KeyboardInterrupt:
            self._stop.set()
            _wait_through_interrupts(finished)
            raise
        wall = time.perf_counter() - t0
        if self._errors:
            stage, error = self._errors[0]
            if isinstance(error, StreamSRError):
                raise error
            raise PipelineError(f"{stage} stage failed: {type(error).__name__}: {error}") from error
        n = max(self._written, 1)
        return RunStats(
            frames=self._written,
            wall_s=wall,
            stage_ms_per_frame={k: c.busy_s * 1000 / n for k, c in self._clocks.items()},
            batches=self._batches,
            dropped=decoded.dropped,
        )

    def _guard(self, stage: str, body: Callable[..., None], finished: threading.Event, *args: object) -> None:
        try:
            body(*args)
        except Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - every failure must reach run()
            log.debug("%s stage failed", stage, exc_info=True)
            self._errors.append((stage, e))
            self._stop.set()
        finally:
            finished.set()

    def _decode(self, out: StageQueue) -> None:
        clock = self._clocks["decode"]
        iterator = iter(self.source)
        while True:
            with clock.timed():
                frame = next(iterator, None)
            if frame is None:
                break
            out.put(frame)
        out.put(END)

    def _infer(self, inp: StageQueue, out: StageQueue) -> None:
        clock = self._clocks["infer"]
        keep = self.policy.keep_source_planes
        in_flight: list[tuple[object, list[Frame]]] = []  # GPU backends keep a batch queued

        def emit_oldest() -> None:
            pending, frames = in_flight.pop(0)
            with clock.timed():
                results = collect_batch(pending, frames, keep)
            for frame in results:
                out.put(frame)

        for batch in batches(inp, self.policy.max_batch, self.policy.max_wait_s, self.policy.max_pixels):
            with clock.timed():
                in_flight.append((submit_batch(self.backend, batch), batch))
            self._batches += 1
            while len(in_flight) >= max(1, getattr(self.backend, "in_flight", 1)):
                emit_oldest()
        while in_flight:
            emit_oldest()
        out.put(END)

    def _encode(self, inp: StageQueue) -> None:
        clock = self._clocks["encode"]
        while True:
            frame = inp.get()
            if frame is END:
                return
            with clock.timed():
                if self.post is not None:
                    frame = self.post(frame)
                self.sink.write(frame)
            self._written += 1
            if self.on_frame is not None:
                self.on_frame(self._written)


def _wait_all(finished: list[threading.Event]) -> None:
    """Wait for every stage to finish.

    Events, not ``Thread.join``: on Python 3.11 a signal that lands inside ``join`` can leave a
    thread that still runs marked as stopped (the interrupted wait releases the thread's state
    lock), and the sink would then be finished while the encode stage still writes to it:
    frames missing or garbled at the end of the file (tests/test_interrupt.py, now and then).
    """
    for done in finished:
        while not done.wait(0.1):
            pass


def _wait_through_interrupts(finished: list[threading.Event]) -> None:
    """Wait for the stages to stop (each does within one batch) even if more interrupts
    arrive meanwhile: the sink must not be finished while a stage still writes to it."""
    while True:
        try:
            _wait_all(finished)
            return
        except KeyboardInterrupt:
            continue
