"""Long files cut at keyframes into segments, processed apart and joined: the result must be
the unsplit run's, frame for frame (count, pts, audio), whatever fails on the way."""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from synth import decode_video, make_clip, packets, read_index, vfr_pts

from streamsr.batch import BatchOptions, run_batch
from streamsr.batch.discover import Item
from streamsr.batch.job import BatchJob
from streamsr.batch.journal import STATE_DIR
from streamsr.batch.segments import SpanSource, SplitError, join_segments, plan_segments
from streamsr.batch.worker import Task, TaskResult, Worker
from streamsr.enhance import EnhanceOptions
from streamsr.sinks.av_sink import EncodeSettings

SPLIT = ["--split-over", "1", "--segment-seconds", "0.4"]


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    return {
        # 3.6 s at 25 fps, a keyframe every 12 frames (0.48 s): cut into 8 segments
        "cfr.mp4": make_clip(d / "cfr.mp4", width=64, height=48, frames=90, audio_seconds=3.6, gop=12),
        # variable frame rate in a 90 kHz MP4: the MP4 muxer shifts a segment that starts late by
        # its edit list's rounding to 1/1000 s, which the join must undo
        "vfr.mp4": make_clip(d / "vfr.mp4", width=64, height=48, frames=60, pts=vfr_pts(60), audio_seconds=3.0,
                             gop=10),
        # variable frame rate in Matroska, with audio and subtitles
        "vfr.mkv": make_clip(d / "vfr.mkv", width=64, height=48, frames=60, pts=vfr_pts(60), audio_seconds=3.0,
                             gop=10, subtitles=[(0.1, 0.5, "one"), (2.0, 2.5, "two")]),
    }


def audio_span(pk) -> Fraction:
    return sum((Fraction(d) * tb for _, d, tb, _ in pk), Fraction(0))


def assert_same_as_unsplit(split: Path, whole: Path, clip) -> None:
    a, b = decode_video(split), decode_video(whole)
    assert len(a.lumas) == len(b.lumas) == clip.frames
    assert a.pts == b.pts and a.time_base == b.time_base
    assert a.times == decode_video(clip.path).times
    assert [read_index(y, clip.size, 2) for y in a.lumas] == list(range(clip.frames))
    for kind in ("audio", "subtitle"):
        pa, pb = packets(split, kind), packets(whole, kind)
        assert [(p[0], p[3]) for p in pa] == [(p[0], p[3]) for p in pb], kind
    assert audio_span(packets(split, "audio")) == audio_span(packets(whole, "audio"))


# -- planning -------------------------------------------------------------------------------
def keyframe_pts(path: Path) -> list[int]:
    import av

    with av.open(str(path)) as c:
        return [p.pts for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe]


def test_plan_cuts_at_keyframes(long_clips):
    clip = long_clips["cfr.mp4"]
    plan, why = plan_segments(clip.path, 0.4)
    assert plan is not None, why
    assert len(plan.segments) >= 5 and plan.frames == 90
    assert [s.start for s in plan.segments[1:]] == [s.end for s in plan.segments[:-1]]
    keys = keyframe_pts(clip.path)
    assert all(s.start in keys for s in plan.segments[1:])
    step = Fraction(4, 10) / plan.time_base
    assert all(b.start - a.start >= step for a, b in zip(plan.segments[1:], plan.segments[2:]))
    assert plan.segments[0].start is None and plan.segments[-1].end is None
    # no keyframe to cut at: not split
    one_gop = make_clip(clip.path.with_name("onegop.mp4"), width=64, height=48, frames=40, gop=100)
    assert plan_segments(one_gop.path, 0.5) == (None, "no keyframe to cut at (segments of 0.5 s)")


def test_a_segment_that_decodes_other_frames_is_refused(long_clips, tmp_path, models_dir):
    clip = long_clips["cfr.mp4"]
    plan, _ = plan_segments(clip.path, 0.4)
    spec = plan.segments[2]
    with SpanSource(clip.path, spec) as source:
        pts = [f.pts for f in source]
    assert len(pts) == spec.frames and pts[0] == spec.start and pts[-1] < spec.end
    wrong = replace(spec, frames=spec.frames + 1)
    with pytest.raises(SplitError, match=f"not the {spec.frames + 1} planned"):
        with SpanSource(clip.path, wrong) as source:
            list(source)
    # a segment file that does not hold its planned frames is refused by the join, which
    # leaves nothing at the target
    worker = Worker(EnhanceOptions(model=str(models_dir / "near_x2.json"), engine="onnxruntime"))
    files = []
    for s in plan.segments:
        out = tmp_path / f"seg{s.index}.mp4"
        assert worker.run(Task(f"t{s.index}", "k", clip.path, out, segment=s)).ok
        files.append(out)
    files[3], files[4] = files[4], files[3]
    with pytest.raises(SplitError, match="segment 3"):
        join_segments(clip.path, plan, files, tmp_path / "joined.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)


def test_segments_encoded_differently_are_not_joined(long_clips, tmp_path, models_dir):
    # e.g. a Ray cluster where one worker has NVENC and another falls back to x264: one stream
    # cannot hold both, so the join refuses (and the job does the file whole)
    clip = long_clips["cfr.mp4"]
    plan, _ = plan_segments(clip.path, 0.4)
    model = str(models_dir / "near_x2.json")
    h264 = Worker(EnhanceOptions(model=model, engine="onnxruntime"))
    hevc = Worker(EnhanceOptions(model=model, engine="onnxruntime", encode=EncodeSettings(codec="hevc")))
    files = []
    for s in plan.segments:
        out = tmp_path / f"seg{s.index}.mp4"
        assert (hevc if s.index == 2 else h264).run(Task(f"t{s.index}", "k", clip.path, out, segment=s)).ok
        files.append(out)
    with pytest.raises(SplitError, match="segment 2 was encoded with hevc, not h264"):
        join_segments(clip.path, plan, files, tmp_path / "joined.mp4")
    assert not (tmp_path / "joined.mp4").exists()


# -- end to end -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cfr.mp4", "vfr.mp4", "vfr.mkv"])
def test_split_run_equals_unsplit_run(long_clips, model_args, run_cli, tmp_path, name):
    clip = long_clips[name]
    whole = tmp_path / f"whole{clip.path.suffix}"
    assert run_cli("enhance", clip.path, "-o", whole, *model_args(2)).code == 0
    outdir = tmp_path / "out"
    r = run_cli("batch", clip.path, "-o", outdir, *model_args(2), "--workers", "2", *SPLIT)
    assert r.code == 0, r.err
    segments = int(r.out.split(" segments")[0].rsplit(" ", 1)[1])
    assert segments >= 3
    assert_same_as_unsplit(outdir / name, whole, clip)
    assert sorted(os.listdir(outdir)) == sorted([name, STATE_DIR])
    assert list((outdir / STATE_DIR / "work").iterdir()) == []


class InlineRunner:
    """Runs tasks in this process, one at a time, and fails the ones ``fail(task)`` names."""

    def __init__(self, options: EnhanceOptions, fail) -> None:
        self.worker = Worker(options)
        self.fail = fail
        self.pending: list[Task] = []
        self.capacity = 1
        self.log: list[tuple[str, str | None]] = []

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    def describe(self) -> str:
        return "inline"

    def submit(self, task: Task) -> None:
        self.pending.append(task)

    def poll(self, timeout: float) -> list[TaskResult]:
        if not self.pending:
            return []
        task = self.pending.pop(0)
        kind = self.fail(task)
        if kind == "interrupt":
            raise KeyboardInterrupt
        if kind is not None:
            task.output.write_bytes(b"half a segment")  # what a dying worker may leave
            result = TaskResult(task, error=f"injected {kind}", kind=kind)
        else:
            result = self.worker.run(task)
        self.log.append((task.id, kind))
        return [result]

    def progress(self) -> dict[str, int]:
        return {}

    def close(self, terminate: bool = False) -> None:
        self.worker.close()


def run_inline(clip, outdir: Path, models_dir: Path, fail, retries: int = 2):
    options = BatchOptions(EnhanceOptions(model=str(models_dir / "near_x2.json"), engine="onnxruntime"),
                           split_over_s=1, segment_s=0.4, retries=retries)
    runners = []

    def make(enhance, workers, tasks):
        runners.append(InlineRunner(enhance, fail))
        return runners[-1]

    report = BatchJob([Item(clip.path, Path(clip.path.name))], outdir, options).run(make)
    return report, runners[0].log


def test_failed_segments_are_redone_and_never_reach_the_join(long_clips, models_dir, model_args, run_cli,
                                                             tmp_path):
    clip = long_clips["cfr.mp4"]
    crashed = set()

    def fail(task):  # segments 1 and 4 crash on their first attempt
        if task.segment is not None and task.segment.index in (1, 4) and task.attempt == 1:
            crashed.add(task.segment.index)
            return "crash"
        return None

    report, log = run_inline(clip, tmp_path / "out", models_dir, fail)
    assert crashed == {1, 4}
    segments = len(plan_segments(clip.path, 0.4)[0].segments)
    assert [(f.status, f.frames, f.segments, f.retries) for f in report.files] == [("done", 90, segments, 2)]
    assert sum(1 for _, kind in log if kind is None) == segments
    whole = tmp_path / "whole.mp4"
    assert run_cli("enhance", clip.path, "-o", whole, *model_args(2)).code == 0
    assert_same_as_unsplit(tmp_path / "out" / "cfr.mp4", whole, clip)


def test_a_segment_failing_every_attempt_fails_the_file_and_writes_nothing(long_clips, models_dir, tmp_path):
    clip = long_clips["cfr.mp4"]
    report, log = run_inline(clip, tmp_path / "out", models_dir,
                             lambda t: "crash" if t.segment is not None and t.segment.index == 2 else None,
                             retries=1)
    assert report.files[0].status == "failed" and "2 attempts" in report.files[0].error
    assert not (tmp_path / "out" / "cfr.mp4").exists()


def test_a_split_that_does_not_match_is_done_whole(long_clips, models_dir, tmp_path):
    clip = long_clips["cfr.mp4"]
    report, log = run_inline(clip, tmp_path / "out", models_dir,
                             lambda t: "split" if t.segment is not None and t.segment.index == 3 else None)
    f = report.files[0]
    assert (f.status, f.frames, f.segments, f.note) == ("done", 90, 0, "split abandoned, done whole")
    assert log[-1][0].startswith("cfr.mp4#None#")  # the last task: the whole file
    assert [read_index(y, clip.size, 2) for y in decode_video(tmp_path / "out" / "cfr.mp4").lumas] == list(range(90))


def test_an_interrupted_split_resumes_from_its_done_segments(long_clips, models_dir, model_args, run_cli, tmp_path):
    clip = long_clips["vfr.mkv"]
    outdir = tmp_path / "out"
    done = []

    def fail(task):
        if len(done) == 3:
            return "interrupt"
        done.append(task.segment.index)
        return None

    report, _ = run_inline(clip, outdir, models_dir, fail)
    assert report.interrupted and report.files[0].status == "interrupted"
    assert not (outdir / "vfr.mkv").exists()
    r = run_cli("batch", clip.path, "-o", outdir, *model_args(2), "--workers", "1", *SPLIT)
    assert r.code == 0, r.err
    assert "resumed with 3 of " in r.out
    whole = tmp_path / "whole.mkv"
    assert run_cli("enhance", clip.path, "-o", whole, *model_args(2)).code == 0
    assert_same_as_unsplit(outdir / "vfr.mkv", whole, clip)


@pytest.mark.slow
def test_a_worker_killed_mid_segment_is_replaced(long_clips, models_dir, model_args, run_cli, tmp_path):
    """A real worker process killed with SIGKILL while it writes a segment: the pool is
    restarted, the segments it held are redone, and the join is exact."""
    clip = make_clip(tmp_path / "big.mp4", width=160, height=120, frames=125, audio_seconds=5.0, gop=25)
    outdir = tmp_path / "out"
    killed = []

    def killer() -> None:
        deadline = time.monotonic() + 60
        work = outdir / STATE_DIR / "work"
        while time.monotonic() < deadline and not killed:
            partial = [p for p in work.rglob("*.partial*")] if work.exists() else []
            children = multiprocessing.active_children()
            if partial and children:
                os.kill(children[0].pid, signal.SIGKILL)
                killed.append(partial[0].name)
            time.sleep(0.01)

    thread = threading.Thread(target=killer)
    thread.start()
    options = BatchOptions(EnhanceOptions(model=str(models_dir / "near_x2.json"), engine="onnxruntime"),
                           workers=2, split_over_s=1, segment_s=1.0)
    report = run_batch([Item(clip.path, Path("big.mp4"))], outdir, options)
    thread.join()
    assert killed, "no segment was in progress to kill"
    assert [(f.status, f.frames) for f in report.files] == [("done", 125)], report.files
    assert report.files[0].segments >= 3 and report.files[0].retries >= 1
    whole = tmp_path / "whole.mp4"
    assert run_cli("enhance", clip.path, "-o", whole, *model_args(2)).code == 0
    assert_same_as_unsplit(outdir / "big.mp4", whole, clip)
