"""The batch driver: what to do, who does it, what was done.

The driver discovers the work, skips what the journal says is done, hands files (and the
segments of long files) to a runner (local processes or Ray actors), moves each finished
output into place, joins segments, and writes every change of state to the journal before
going on. Outputs are written in ``OUTDIR/.streamsr-batch/work/`` and renamed to their
target when complete, so a target path only ever holds a complete file; a killed job leaves
at most temporary files in the work folder, which the next run removes.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from streamsr.backends.base import default_threads
from streamsr.batch import sizing
from streamsr.batch.discover import Item
from streamsr.batch.journal import STATE_DIR, Fingerprint, Journal, sha256_file
from streamsr.batch.outputs import clean_work, options_fingerprint, place, verdict, work_dir
from streamsr.batch.report import BatchOptions, BatchReport, FileReport, Runner
from streamsr.batch.segments import (SEGMENT_SUFFIX, JoinCancelled, Probe, SegmentPlan, SplitError, check_copy,
                                     join_segments, plan_segments, probe)
from streamsr.batch.worker import Task, TaskResult
from streamsr.enhance import SCALES, EnhanceOptions
from streamsr.errors import ConfigError, OutputError, PipelineError, StreamSRError

log = logging.getLogger(__name__)

TICK_S = 0.25


@dataclass
class _File:
    """The driver's view of one file in progress."""

    item: Item
    target: Path
    work: Path
    probe: Probe | None = None
    fingerprint: Fingerprint | None = None
    plan: SegmentPlan | None = None
    segment_frames: dict[int, int] = field(default_factory=dict)
    attempts: dict[int | None, int] = field(default_factory=dict)
    started: float | None = None  # when its first task was handed to a worker
    whole: bool = False  # the split was abandoned
    note: str = ""
    model: str = ""  # the model the worker chose for it, when the job names none
    model_rule: str = ""  # and why
    closed: bool = False


class BatchJob:
    def __init__(self, items: list[Item], outdir: Path, options: BatchOptions, container: str = "same",
                 on_progress: Callable[[int, int | None], None] | None = None,
                 on_start: Callable[[str, int, int], None] | None = None) -> None:
        self.items = items
        self.outdir = outdir.resolve()
        self.options = options
        self.container = container
        self.on_progress = on_progress  # (frames done, total or None)
        self.on_start = on_start  # (runner description, files to do, files skipped)
        self.state_dir = self.outdir / STATE_DIR
        self.work_root = self.state_dir / "work"
        self._stop = threading.Event()
        self._queue: deque[Task] = deque()
        self._files: dict[str, _File] = {}
        self._reports: dict[str, FileReport] = {}
        self._io: ThreadPoolExecutor | None = None
        self._io_jobs: dict[Future, tuple[str, str]] = {}  # future -> (what, key)
        self._done_frames: dict[str, int] = {}
        self._engine = ""
        self._fp: dict[str, object] = {}
        self._journal: Journal | None = None  # open while the job runs

    @property
    def journal(self) -> Journal:
        assert self._journal is not None, "the job is not running"
        return self._journal

    # -- set-up -----------------------------------------------------------------------------
    def _check(self) -> str:
        e = self.options.enhance
        if e.scale not in SCALES:
            raise ConfigError(f"unsupported scale {e.scale} (choose from {', '.join(map(str, SCALES))})")
        if e.batch < 1:
            raise ConfigError(f"--batch must be at least 1, not {e.batch}")
        if self.options.workers is not None and self.options.workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {self.options.workers}")
        if self.options.segment_s <= 0 or self.options.split_over_s < 0:
            raise ConfigError("--segment-seconds must be positive and --split-over at least 0")
        if self.options.retries < 0:
            raise ConfigError(f"--retries must be at least 0, not {self.options.retries}")
        if not self.outdir.exists():
            if not self.outdir.parent.is_dir():
                raise OutputError(f"output directory's parent does not exist: {self.outdir.parent}")
            try:
                self.outdir.mkdir()
            except OSError as e:
                raise OutputError(f"cannot create {self.outdir}: {e.strerror or e}") from None
        elif not self.outdir.is_dir():
            raise OutputError(f"output is a file, not a folder: {self.outdir}")
        return options_fingerprint(e, self.container)

    def _classify(self) -> list[_File]:
        """Skip what is done; the rest, with a note of why it is (re)done."""
        todo = []
        for item in self.items:
            target = self.outdir / item.rel
            record = self.journal.files.get(item.key)
            action, why = verdict(record, target, item.src, self._fp, self.options.force)
            if action == "skip":
                self._reports[item.key] = FileReport(item.key, item.src, "skipped",
                                                     frames=int((record or {}).get("frames", 0)), note=why)
            elif action == "refuse":
                self._reports[item.key] = FileReport(item.key, item.src, "failed", error=why)
            else:
                todo.append(_File(item, target, work_dir(self.work_root, item.key), note=why))
        return todo

    def _clean_work(self, keep: set[str]) -> None:
        """Remove what killed runs left in the work folder; keep reusable segments of ``keep``."""
        wanted: dict[Path, set[str]] = {}
        for (key, _), record in self.journal.segments.items():
            if key in keep:
                wanted.setdefault(work_dir(self.work_root, key), set()).add(record["file"])
        clean_work(self.work_root, wanted)

    # -- the run ----------------------------------------------------------------------------
    def run(self, make_runner: Callable[[EnhanceOptions, int | None, int], Runner]) -> BatchReport:
        """Do the job with the runner ``make_runner(options, workers, tasks)`` returns."""
        t0 = time.perf_counter()
        self._fp = self._check()
        interrupted = False
        runner: Runner | None = None
        with Journal(self.outdir) as journal:
            self._journal = journal
            todo = self._classify()
            self._clean_work({f.item.key for f in todo})
            self._probe(todo)
            total = sum((f.probe.frames or 0) if f.probe else 0 for f in todo) or None
            try:
                if todo:
                    tasks = sum(self._expected_tasks(f) for f in todo)
                    runner = make_runner(self.options.enhance, self.options.workers, tasks)
                    if self.on_start is not None:
                        self.on_start(runner.describe(), len(todo), len(self.items) - len(todo))
                    self._io = ThreadPoolExecutor(2, thread_name_prefix="streamsr-batch-io")
                    for f in todo:
                        self._files[f.item.key] = f
                        self._start_file(f)
                    self._loop(runner, total)
                runner_name = runner.describe() if runner else ""
            except KeyboardInterrupt:
                interrupted = True
                runner_name = runner.describe() if runner else ""
                self._stop.set()
                if runner is not None:
                    runner.close(terminate=True)
                    runner = None
                for f in self._files.values():
                    if not f.closed:
                        self._reports[f.item.key] = FileReport(f.item.key, f.item.src, "interrupted",
                                                               note="redone by the next run")
            except BaseException:
                self._stop.set()
                if runner is not None:
                    runner.close(terminate=True)
                    runner = None
                raise
            finally:
                self._stop.set()
                if runner is not None:
                    runner.close()
                if self._io is not None:
                    self._io.shutdown(wait=True, cancel_futures=True)
                keep = {k for k, r in self._reports.items() if r.status in ("failed", "interrupted")}
                self._clean_work(keep)
        reports = [self._reports[i.key] for i in self.items if i.key in self._reports]
        return BatchReport(self.outdir, reports, time.perf_counter() - t0, runner_name, self._engine, interrupted)

    def _expected_tasks(self, f: _File) -> int:
        if f.probe and f.probe.seconds and self._splits(f):
            return max(1, int(f.probe.seconds // self.options.segment_s))
        return 1

    def _splits(self, f: _File) -> bool:
        over = self.options.split_over_s
        return bool(over and f.probe and f.probe.seconds and f.probe.seconds > over)

    def _probe(self, files: list[_File]) -> None:
        if not files:
            return
        with ThreadPoolExecutor(4) as pool:
            for f, p in zip(files, pool.map(lambda f: probe(f.item.src), files)):
                f.probe = p

    def _start_file(self, f: _File) -> None:
        self.journal.file_running(f.item.key, f.item.src, 1)
        try:
            f.work.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._fail(f, f"cannot write in {f.work}: {e.strerror or e}")
            return
        if self._splits(f):
            self._submit_io(("plan", f.item.key), self._plan, f)
        else:
            self._queue_whole(f)

    def _queue_whole(self, f: _File) -> None:
        try:
            f.fingerprint = Fingerprint.of(f.item.src)
        except OSError:
            f.fingerprint = None  # the worker reports the missing input
        self._queue_task(f, None)

    def _queue_task(self, f: _File, index: int | None) -> None:
        attempt = f.attempts.get(index, 0) + 1
        f.attempts[index] = attempt
        segment = f.plan.segments[index] if index is not None and f.plan else None
        name = "whole" + f.target.suffix if index is None else f"seg-{index:04d}{SEGMENT_SUFFIX}"
        self._queue.append(Task(id=f"{f.item.key}#{index}#{attempt}", key=f.item.key, src=f.item.src,
                                output=f.work / name, segment=segment, attempt=attempt))

    def _submit_io(self, what: tuple[str, str], fn: Callable[..., object], *args: object) -> None:
        assert self._io is not None
        self._io_jobs[self._io.submit(fn, *args)] = what

    def _loop(self, runner: Runner, total: int | None) -> None:
        last = 0.0
        while self._queue or runner.in_flight or self._io_jobs:
            while self._queue and runner.in_flight < runner.capacity:
                task = self._queue.popleft()
                f = self._files[task.key]
                if not f.closed:
                    f.started = f.started or time.perf_counter()
                    runner.submit(task)
            for result in runner.poll(TICK_S):
                self._on_result(result)
            for future in [f for f in self._io_jobs if f.done()]:
                what, key = self._io_jobs.pop(future)
                self._on_io(what, self._files[key], future)
            now = time.monotonic()
            if self.on_progress is not None and now - last >= TICK_S:
                last = now
                live = sum(runner.progress().values())
                self.on_progress(sum(self._done_frames.values()) + live, total)
        if self.on_progress is not None:
            self.on_progress(sum(self._done_frames.values()), total)

    # -- results ----------------------------------------------------------------------------
    def _on_result(self, r: TaskResult) -> None:
        f = self._files[r.task.key]
        if f.closed:
            return
        if r.engine:
            self._engine = r.engine
        if r.model:
            f.model, f.model_rule = r.model, r.model_rule
        index = r.task.segment.index if r.task.segment is not None else None
        if r.task.segment is not None and (f.whole or f.plan is None):
            return  # a segment of a split that was abandoned
        if r.ok:
            if index is None:
                self._finish_whole(f, r)
            else:
                self._finish_segment(f, index, r)
            return
        if r.kind == "job":
            raise _JobError(r.error or "the model cannot be loaded")
        if r.kind == "split":
            self._abandon_split(f, r.error or "")
            return
        if r.kind == "crash" and f.attempts.get(index, 1) <= self.options.retries:
            log.warning("%s%s: %s; trying again", f.item.key, "" if index is None else f" segment {index}", r.error)
            self._queue_task(f, index)
            return
        error = r.error or "failed"
        if r.kind == "crash":
            error += f" ({f.attempts.get(index, 1)} attempts)"
        self._fail(f, error)

    def _finish_whole(self, f: _File, r: TaskResult) -> None:
        now = self._place_if_unchanged(f, r.task.output, f.fingerprint)
        if now is not None:
            self._done(f, replace(now, sha256=r.sha256), r.frames, r.seconds)

    def _place_if_unchanged(self, f: _File, work_file: Path, before: Fingerprint | None) -> Fingerprint | None:
        """Move ``work_file`` to the target unless the input changed while it was processed;
        the input's fingerprint now, or None when the file failed."""
        try:
            now = Fingerprint.of(f.item.src)
        except OSError as e:
            self._fail(f, f"{f.item.src}: {e.strerror or e}")
            return None
        if before is not None and (now.size, now.mtime_ns) != (before.size, before.mtime_ns):
            self._fail(f, f"{f.item.src} changed while it was processed (still being written?)")
            return None
        try:
            place(work_file, f.target)
        except OSError as e:
            self._fail(f, f"cannot write {f.target}: {e.strerror or e}")
            return None
        return now

    def _finish_segment(self, f: _File, index: int, r: TaskResult) -> None:
        assert f.plan is not None
        self.journal.segment_done(f.item.key, index, f.plan.id, r.frames, r.task.output.name)
        f.segment_frames[index] = r.frames
        self._done_frames[f.item.key] = sum(f.segment_frames.values())
        if len(f.segment_frames) == len(f.plan.segments):
            self._submit_io(("join", f.item.key), self._join, f)

    def _abandon_split(self, f: _File, why: str) -> None:
        log.warning("%s: %s; processing it whole instead", f.item.key, why)
        f.whole = True
        f.note = "split abandoned, done whole"
        self._queue = deque(t for t in self._queue if t.key != f.item.key)
        self._done_frames.pop(f.item.key, None)
        self._queue_whole(f)

    def _done(self, f: _File, fingerprint: Fingerprint, frames: int, seconds: float | None = None) -> None:
        """``seconds``: the worker's time for a whole file; from the first task to the join's end else."""
        if seconds is None:
            seconds = time.perf_counter() - (f.started or time.perf_counter())
        self.journal.file_done(f.item.key, f.item.src, fingerprint, frames, seconds, self._fp)
        segments = len(f.plan.segments) if f.plan is not None and not f.whole else 0
        self._reports[f.item.key] = FileReport(f.item.key, f.item.src, "done", frames, seconds,
                                               segments=segments, retries=_retries(f), note=f.note,
                                               model=f.model, model_rule=f.model_rule)
        self._done_frames[f.item.key] = frames
        self._close(f)

    def _fail(self, f: _File, error: str) -> None:
        error = " ".join(error.split())  # one line
        self.journal.file_failed(f.item.key, f.item.src, error, self._fp)
        seconds = time.perf_counter() - (f.started or time.perf_counter())
        self._reports[f.item.key] = FileReport(f.item.key, f.item.src, "failed", seconds=seconds, error=error,
                                               retries=_retries(f), note=f.note)
        self._done_frames.pop(f.item.key, None)
        self._close(f)
        log.info("%s failed: %s", f.item.key, error)

    def _close(self, f: _File) -> None:
        f.closed = True
        self._queue = deque(t for t in self._queue if t.key != f.item.key)
        if self._reports[f.item.key].status == "done":
            self.journal.forget_segments(f.item.key)
            shutil.rmtree(f.work, ignore_errors=True)

    # -- work on the driver's I/O threads ---------------------------------------------------
    def _plan(self, f: _File) -> tuple[SegmentPlan | None, str, Fingerprint]:
        before = Fingerprint.of(f.item.src)
        plan, why = plan_segments(f.item.src, self.options.segment_s, self._stop)
        if plan is not None:
            check_copy(f.item.src, f.target, f.work)
        return plan, why, replace(before, sha256=sha256_file(f.item.src))

    def _join(self, f: _File) -> int:
        """Join in the work folder (a killed job leaves nothing beside the target), then move."""
        assert f.plan is not None
        files = [f.work / f"seg-{s.index:04d}{SEGMENT_SUFFIX}" for s in f.plan.segments]
        joined = f.work / f"joined{f.target.suffix}"
        frames = join_segments(f.item.src, f.plan, files, joined, self._stop)
        if self._stop.is_set():
            raise JoinCancelled(f"stopped before {f.target} was moved into place")
        return frames

    def _on_io(self, what: str, f: _File, future: Future) -> None:
        if f.closed:
            return
        if what == "plan":
            self._on_plan(f, future)
        else:
            self._on_join(f, future)

    def _on_plan(self, f: _File, future: Future) -> None:
        error = future.exception()
        if isinstance(error, OutputError):
            self._fail(f, str(error))
            return
        if error is not None:  # unreadable: the worker gives the proper message
            log.debug("%s: cannot plan segments: %s", f.item.key, error)
            self._queue_whole(f)
            return
        plan, why, fingerprint = future.result()
        if plan is None:
            log.info("%s is not split: %s", f.item.key, why)
            self._queue_whole(f)
            return
        f.plan, f.fingerprint = plan, fingerprint
        done = self.journal.segments_of(f.item.key, plan.id)
        for spec in plan.segments:
            record = done.get(spec.index)
            if record is not None and (f.work / record["file"]).exists():
                f.segment_frames[spec.index] = int(record["frames"])
            else:
                self._queue_task(f, spec.index)
        self._done_frames[f.item.key] = sum(f.segment_frames.values())
        if f.segment_frames:
            f.note = f"resumed with {len(f.segment_frames)} of {len(plan.segments)} segments done"
        if len(f.segment_frames) == len(plan.segments):
            self._submit_io(("join", f.item.key), self._join, f)

    def _on_join(self, f: _File, future: Future) -> None:
        error = future.exception()
        if isinstance(error, JoinCancelled):
            return
        if isinstance(error, SplitError):
            self._abandon_split(f, str(error))
            return
        if error is not None:
            reason = str(error) if isinstance(error, StreamSRError) else f"{type(error).__name__}: {error}"
            self._fail(f, f"joining the segments failed: {reason}")
            return
        assert f.fingerprint is not None
        if self._place_if_unchanged(f, f.work / f"joined{f.target.suffix}", f.fingerprint) is not None:
            self._done(f, f.fingerprint, future.result())


def _retries(f: _File) -> int:
    return sum(n - 1 for n in f.attempts.values())


class _JobError(PipelineError):
    """The workers cannot run the model at all: the job stops."""

    exit_code = 4


def run_batch(items: list[Item], outdir: Path, options: BatchOptions, container: str = "same",
              on_progress: Callable[[int, int | None], None] | None = None,
              on_start: Callable[[str, int, int], None] | None = None) -> BatchReport:
    """Enhance ``items`` into ``outdir`` on local worker processes or on Ray (``options.ray``)."""
    job = BatchJob(items, outdir, options, container, on_progress, on_start)
    return job.run(_runner_factory(options))


def _runner_factory(options: BatchOptions) -> Callable[[EnhanceOptions, int | None, int], Runner]:
    def make(enhance: EnhanceOptions, workers: int | None, tasks: int) -> Runner:
        if options.ray is not None:
            from streamsr.batch.ray_runner import RayRunner

            address = None if options.ray == "local" else options.ray
            return RayRunner(enhance, address, workers, tasks)
        from streamsr.batch.local import LocalRunner

        cores = default_threads()
        gpu = sizing.needs_gpu(enhance.engine, enhance.engine == "auto" and sizing.local_gpu())
        n = workers or sizing.default_workers(cores, 1 if gpu else 0, gpu, tasks)
        return LocalRunner(replace(enhance, threads=sizing.threads_per_worker(cores, n, enhance.threads)), n)

    return make
