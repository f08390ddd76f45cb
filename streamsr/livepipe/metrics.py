"""Per-camera live metrics: FPS in and out, drops, latency percentiles, reconnects, uptime.

Rendered by prometheus_client through a custom collector (``/metrics`` on the preview
server) and as a summary on exit.
Latency is capture (decode) to output (every output has been handed the frame), per frame.
"""
from __future__ import annotations

import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streamsr.sources.live_source import SourceState

QUANTILES = (0.5, 0.95, 0.99)
# queue full (newer frame came), too old to infer, too old to show, post-processing failed
DROP_REASONS = ("queue", "stale", "late", "error")
OUTPUT_DROP_REASONS = ("queue", "late")  # per output: it fell behind the camera, or a frame waited too long


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], 1e-6)
        return (len(self._times) - 1) / span if now - self._times[-1] < self.window_s else 0.0


class CameraMetrics:
    """Counters of one camera. Threads write under the lock; readers take a snapshot."""

    def __init__(self, name: str, state: SourceState | None = None, window: int = 4096) -> None:
        self.name = name
        self.state = state or SourceState()
        self.started = time.monotonic()
        self.frames_in = 0
        self.frames_out = 0
        self.drops = dict.fromkeys(DROP_REASONS, 0)
        self.output_errors = 0
        self.output_drops: dict[str, dict[str, int]] = {}  # output label -> reason -> frames
        self.output_error_counts: dict[str, int] = {}  # output label -> errors
        self.postprocess_errors = 0
        self.latency_sum = 0.0
        self._latency: deque[float] = deque(maxlen=window)  # the most recent frames
        self._all_latency = array("f")  # every frame of the run (4 bytes each, capped), for the exit summary
        self._in = RateMeter()
        self._out = RateMeter()
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget what was counted so far (benchmarks: after the warm-up)."""
        with self._lock:
            self.started = time.monotonic()
            self.frames_in = self.frames_out = self.output_errors = self.postprocess_errors = 0
            self.drops = dict.fromkeys(DROP_REASONS, 0)
            self.output_drops = {k: dict.fromkeys(OUTPUT_DROP_REASONS, 0) for k in self.output_drops}
            self.output_error_counts = dict.fromkeys(self.output_error_counts, 0)
            self.latency_sum = 0.0
            self._latency.clear()
            self._all_latency = array("f")

    def captured(self, now: float) -> None:
        with self._lock:
            self.frames_in += 1
            self._in.tick(now)

    def dropped(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.drops[reason] += n

    def postprocess_failed(self) -> None:
        """A frame whose post-processing raised: counted as an error and as a drop."""
        with self._lock:
            self.postprocess_errors += 1
            self.drops["error"] += 1

    def output_dropped(self, output: str, reason: str, n: int = 1) -> None:
        with self._lock:
            self.output_drops.setdefault(output, dict.fromkeys(OUTPUT_DROP_REASONS, 0))[reason] += n

    def output_error(self, output: str) -> None:
        with self._lock:
            self.output_errors += 1
            self.output_error_counts[output] = self.output_error_counts.get(output, 0) + 1

    def delivered(self, latency_s: float, now: float) -> None:
        with self._lock:
            self.frames_out += 1
            self.latency_sum += latency_s
            self._latency.append(latency_s)
            if len(self._all_latency) < 1_000_000:
                self._all_latency.append(latency_s)
            self._out.tick(now)

    def snapshot(self, whole_run: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            lat = np.array(self._all_latency if whole_run else self._latency, dtype=np.float64)  # a copy
            fps_in, fps_out = self._in.rate(now), self._out.rate(now)
            drops = dict(self.drops)
            output_drops = {k: dict(v) for k, v in self.output_drops.items()}
            output_error_counts = dict(self.output_error_counts)
            frames_in, frames_out = self.frames_in, self.frames_out
            latency_sum = self.latency_sum
        q = {f"p{int(x * 100)}": (float(np.quantile(lat, x)) if lat.size else None) for x in QUANTILES}
        s = self.state
        dropped = sum(drops.values())
        return {
            "camera": self.name,
            "connected": s.connected,
            "frames_in": frames_in,
            "frames_out": frames_out,
            "fps_in": fps_in,
            "fps_out": fps_out,
            "dropped": drops,
            "drop_rate": dropped / frames_in if frames_in else 0.0,
            "latency_s": q,
            "latency_sum_s": latency_sum,
            "reconnects": s.reconnects,
            "outages": s.outages,
            "outage_in_progress_s": (now - s.outage_since) if s.outage_since is not None else None,
            "uptime_s": s.uptime(now),
            "running_s": now - self.started,
            "output_errors": self.output_errors,
            "output_errors_by_output": output_error_counts,
            "output_dropped": output_drops,
            "postprocess_errors": self.postprocess_errors,
        }


class LiveCollector:
    """A prometheus_client collector over the live counters: read at scrape time, never copied."""

    def __init__(self, cameras: Callable[[], Iterable[CameraMetrics]]) -> None:
        self._cameras = cameras

    def collect(self) -> Iterator[Metric]:
        snaps = [c.snapshot() for c in self._cameras()]

        def family(kind: type, name: str, doc: str, labels: Sequence[str], rows: Iterable[tuple[list[str], float]]):
            fam = kind(name, doc, labels=["camera", *labels])
            for values, value in rows:
                fam.add_metric(values, value)
            return fam

        cams = [(s, s["camera"]) for s in snaps]
        yield family(CounterMetricFamily, "streamsr_frames_in", "Frames decoded from the camera.", [],
                     (([c], s["frames_in"]) for s, c in cams))
        yield family(CounterMetricFamily, "streamsr_frames_out", "Enhanced frames handed to the outputs.", [],
                     (([c], s["frames_out"]) for s, c in cams))
        yield family(CounterMetricFamily, "streamsr_frames_dropped",
                     "Frames dropped to keep latency bounded (queue: a newer frame replaced it; stale/late: over "
                     "the ceiling; error: post-processing failed).", ["reason"],
                     (([c, r], s["dropped"][r]) for s, c in cams for r in DROP_REASONS))
        yield family(GaugeMetricFamily, "streamsr_fps_in", "Input frame rate over the last 5 s.", [],
                     (([c], s["fps_in"]) for s, c in cams))
        yield family(GaugeMetricFamily, "streamsr_fps_out", "Output frame rate over the last 5 s.", [],
                     (([c], s["fps_out"]) for s, c in cams))
        # A summary with quantiles (over the recent frames) beside count and sum (over the run).
        latency = Metric("streamsr_latency_seconds", "Capture-to-output latency (quantiles over the recent frames).",
                         "summary")
        for s, c in cams:
            for x in QUANTILES:
                if (value := s["latency_s"][f"p{int(x * 100)}"]) is not None:
                    latency.add_sample("streamsr_latency_seconds", {"camera": c, "quantile": str(x)}, value)
            latency.add_sample("streamsr_latency_seconds_sum", {"camera": c}, s["latency_sum_s"])
            latency.add_sample("streamsr_latency_seconds_count", {"camera": c}, s["frames_out"])
        yield latency
        yield family(GaugeMetricFamily, "streamsr_camera_up", "1 while the camera's stream is connected.", [],
                     (([c], 1.0 if s["connected"] else 0.0) for s, c in cams))
        yield family(CounterMetricFamily, "streamsr_reconnects", "Outages recovered by reconnecting.", [],
                     (([c], s["reconnects"]) for s, c in cams))
        yield family(CounterMetricFamily, "streamsr_outages", "Outages (stream lost or never reached).", [],
                     (([c], s["outages"]) for s, c in cams))
        yield family(CounterMetricFamily, "streamsr_uptime_seconds", "Time the camera's stream has been connected.",
                     [], (([c], s["uptime_s"]) for s, c in cams))
        yield family(CounterMetricFamily, "streamsr_output_errors", "Errors writing to an output.", [],
                     (([c], s["output_errors"]) for s, c in cams))
        yield family(CounterMetricFamily, "streamsr_output_frames_dropped",
                     "Frames an output did not write (queue: it fell behind, a newer frame replaced it; late: over "
                     "the ceiling).", ["output", "reason"],
                     (([c, o, r], n) for s, c in cams for o, by in sorted(s["output_dropped"].items())
                      for r, n in by.items()))
        yield family(CounterMetricFamily, "streamsr_postprocess_errors",
                     "Frames whose post-processing (chroma upscale) failed.", [],
                     (([c], s["postprocess_errors"]) for s, c in cams))


def prometheus_text(cameras: Iterable[CameraMetrics]) -> str:
    """The Prometheus text exposition of every camera's metrics, rendered by prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    cams = list(cameras)
    registry.register(LiveCollector(lambda: cams))
    return generate_latest(registry).decode()


class LiveStatus:
    """What the preview server shows of a live run (its ``Status``): /metrics and /stats.json."""

    STATS_KEYS = ("connected", "fps_in", "fps_out", "latency_s", "dropped", "reconnects", "outages", "uptime_s",
                  "frames_out")

    def __init__(self, cameras: Callable[[], Iterable[CameraMetrics]]) -> None:
        self._cameras = cameras
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(LiveCollector(cameras))

    def prometheus(self) -> bytes:
        return generate_latest(self._registry)

    def stats(self) -> dict[str, dict[str, Any]]:
        out = {}
        for m in self._cameras():
            snap = m.snapshot()
            out[m.name] = {k: snap[k] for k in self.STATS_KEYS}
        return out
