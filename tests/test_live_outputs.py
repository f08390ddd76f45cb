"""Output isolation: a stalled, slow or failing output never holds back a camera's other outputs,
and what it misses is counted; post-processing errors are counted and their log rate-limited."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from streamsr.livepipe import Camera, LivePipeline, LivePolicy, prometheus_text
from streamsr.sources.live_source import LiveOptions, LiveSource
from streamsr.types import Frame

pytestmark = pytest.mark.timeout(60)


class Counting:
    label = "counting"

    def __init__(self) -> None:
        self.frames = 0

    def write(self, camera: str, frame: Frame) -> None:
        self.frames += 1

    def close(self) -> None:
        pass


class Stalled(Counting):
    """Blocks in its first write until released (a push to a server that never answers)."""

    label = "stalled"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, camera: str, frame: Frame) -> None:
        self.frames += 1
        self.release.wait(30)


class Slow(Counting):
    label = "slow"

    def write(self, camera: str, frame: Frame) -> None:
        self.frames += 1
        time.sleep(0.25)


class Failing(Counting):
    label = "failing"

    def write(self, camera: str, frame: Frame) -> None:
        self.frames += 1
        raise OSError("rtsp://pub:Zq9@Yw8@127.0.0.1:1/x refused")


@pytest.fixture(scope="module")
def clip(clip_factory):
    return clip_factory("outputs_clip.mp4", width=96, height=64, frames=50)


def _camera(path: Path) -> Camera:
    return Camera(LiveSource(str(path), LiveOptions(realtime=True, loop=True), name="cam0"))


def test_a_stalled_slow_or_failing_output_does_not_hold_back_the_others(near_x2_backend, clip, caplog) -> None:
    caplog.set_level(logging.WARNING)
    good, stalled, slow, failing = Counting(), Stalled(), Slow(), Failing()
    cam = _camera(clip.path)
    pipe = LivePipeline([cam], near_x2_backend, [stalled, slow, failing, good], LivePolicy(latency_ceiling_s=1.0))
    pipe.start()
    try:
        time.sleep(3.0)
        s = cam.metrics.snapshot()
        written, stalled_frames = good.frames, stalled.frames
    finally:
        stalled.release.set()
        pipe.stop()
        stuck = pipe.join(5)
    assert not stuck, stuck
    assert written >= 50, written  # a 25 fps camera for 3 s, undisturbed by the others
    assert stalled_frames == 1
    drops = s["output_dropped"]
    assert drops["stalled"]["queue"] >= 40, drops  # everything after its first frame: dropped, counted
    assert 5 <= slow.frames <= 16 and drops["slow"]["queue"] >= 30, (slow.frames, drops)
    final = cam.metrics.snapshot()
    assert failing.frames >= 50 and final["output_errors"] == failing.frames
    assert final["output_errors_by_output"] == {"failing": failing.frames}
    failures = [r for r in caplog.records if "output failing failed" in r.getMessage()]
    assert len(failures) == 1 and "Zq9" not in caplog.text and "Yw8" not in caplog.text  # once, masked
    text = prometheus_text([cam.metrics])
    assert 'streamsr_output_frames_dropped_total{camera="cam0",output="stalled",reason="queue"}' in text


def test_post_processing_errors_are_counted_and_their_log_rate_limited(near_x2_backend, clip, caplog) -> None:
    caplog.set_level(logging.ERROR)
    out = Counting()

    def broken(frame: Frame) -> Frame:
        raise ValueError("bad chroma")

    cam = _camera(clip.path)
    pipe = LivePipeline([cam], near_x2_backend, [out], LivePolicy(latency_ceiling_s=1.0), post=broken)
    pipe.run(duration_s=2.5)
    s = cam.metrics.snapshot()
    assert out.frames == 0 and s["postprocess_errors"] >= 30, s
    assert s["dropped"]["error"] == s["postprocess_errors"]  # every frame is accounted for
    logged = [r for r in caplog.records if "post-processing failed" in r.getMessage()]
    assert 1 <= len(logged) <= 2, len(logged)
    text = prometheus_text([cam.metrics])
    assert f'streamsr_postprocess_errors_total{{camera="cam0"}} {s["postprocess_errors"]}' in text
