"""`streamsr batch SRC... -o OUTDIR`: the CLI over streamsr.batch.run_batch."""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from streamsr.batch.discover import CONTAINERS, discover
from streamsr.batch.job import run_batch
from streamsr.batch.report import BatchOptions, BatchReport
from streamsr.errors import ConfigError
from streamsr.progress import ProgressBar

MAX_ROWS = 40


def add_arguments(p: argparse.ArgumentParser) -> None:
    from streamsr.commands.cli import add_encode_arguments, add_model_arguments

    p.add_argument("sources", nargs="+", metavar="SRC",
                   help="video files, folders (walked recursively) or glob patterns (quote them)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR",
                   help="output folder; the input's relative paths are kept below it")
    add_model_arguments(p)
    add_encode_arguments(p)
    p.add_argument("--container", default="same", choices=CONTAINERS,
                   help="output container: 'same' (default) keeps .mp4/.mov/.mkv and writes other inputs "
                        "(.avi, .ts, ...) as .mkv")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (or Ray actors), each with its own model and cores/N threads "
                        "(default: one per GPU for GPU engines, else one per 4 cores)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray: alone, a new local Ray instance; 'auto' attaches to the running cluster; "
                        "or HOST:PORT / ray://HOST:PORT. Needs pip install 'streamsr[ray]' and paths every "
                        "node sees")
    p.add_argument("--force", action="store_true",
                   help="redo every file, including those done earlier, and replace outputs this job did not write")
    p.add_argument("--split-over", type=float, default=600.0, metavar="SECONDS",
                   help="files longer than this are cut at keyframes into segments that workers do in "
                        "parallel (default 600; 0 never splits)")
    p.add_argument("--segment-seconds", type=float, default=300.0, metavar="SECONDS",
                   help="length of those segments (default 300)")
    p.add_argument("--retries", type=int, default=2,
                   help="more attempts for a file or segment whose worker died or crashed (default 2)")
    p.add_argument("--json", type=Path, default=None, help="also write the summary as JSON here")


def _ray_address(value: str | None) -> str | None:
    if value is None or value in ("local", "auto") or ":" in value:
        return value
    raise ConfigError(f"--ray takes auto, local or HOST:PORT, not {value!r} "
                      "(a source right after --ray? write --ray=ADDRESS or put --ray after the sources)")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the job like Ctrl-C: workers ended, the journal consistent, exit 143."""
    state = {"signal": None}

    def handler(signum: int, _frame: object) -> None:
        state["signal"] = signum
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _terminate_as_interrupt.last = state["signal"]  # type: ignore[attr-defined]


def run(args: argparse.Namespace) -> int:
    from streamsr.commands.cli import enhance_options

    options = BatchOptions(
        enhance=enhance_options(args), workers=args.workers, ray=_ray_address(args.ray), force=args.force,
        split_over_s=args.split_over, segment_s=args.segment_seconds, retries=args.retries,
    )
    items = discover(args.sources, args.output, args.container)
    bar = ProgressBar(total=None, label="batch")

    def on_progress(done: int, total: int | None) -> None:
        bar.total = total
        bar(done)

    def on_start(runner: str, todo: int, skipped: int) -> None:
        if skipped:
            print(f"streamsr: skipping {skipped} file{'s' if skipped != 1 else ''} done earlier "
                  "(--force redoes them)", file=sys.stderr)
        print(f"streamsr: {todo} file{'s' if todo != 1 else ''} to do on {runner}", file=sys.stderr)

    _terminate_as_interrupt.last = None  # type: ignore[attr-defined]
    with _terminate_as_interrupt():
        report = run_batch(items, args.output, options, args.container, on_progress, on_start)
    bar.finish()
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        except OSError as e:
            print(f"streamsr: warning: cannot write {args.json}: {e.strerror or e}", file=sys.stderr)
    print(summary(report))
    for f in report.files:
        if f.status == "failed":
            print(f"streamsr: error: {f.key}: {f.error}", file=sys.stderr)
    if report.interrupted:
        signum = getattr(_terminate_as_interrupt, "last", None) or signal.SIGINT
        print(f"streamsr: interrupted by {signal.Signals(signum).name}: files done so far are complete and "
              "recorded; run the same command again to finish", file=sys.stderr)
        return 128 + int(signum)
    failed = report.count("failed")
    if failed:
        print(f"streamsr: error: {failed} of {len(report.files)} files failed (named above)", file=sys.stderr)
        return 1
    return 0


def summary(report: BatchReport) -> str:
    """The processed files, one row each, then the totals."""
    rows = [f for f in report.files if f.status != "skipped"]
    lines = []
    if rows:
        width = min(max(len(f.key) for f in rows), 60)
        by_input = [f.model for f in rows if f.model]
        model_width = max(map(len, by_input), default=0)
        model_head = f"{'model':<{model_width}}  " if by_input else ""
        lines.append(f"  {'file':<{width}}  {'status':<11}  {'frames':>8}  {'fps':>7}  {model_head}note")
        for f in rows[:MAX_ROWS]:
            extra = [f.note] if f.note else []
            extra += [f"{f.segments} segments"] if f.segments else []
            extra += [f"{f.retries} retried"] if f.retries else []
            note = f.error if f.status == "failed" else ", ".join(extra)
            fps = f"{f.fps:7.1f}" if f.status == "done" else f"{'':>7}"
            model = f"{f.model:<{model_width}}  " if by_input else ""
            lines.append(f"  {f.key:<{width}}  {f.status:<11}  {f.frames:>8}  {fps}  {model}{note}")
        if len(rows) > MAX_ROWS:
            lines.append(f"  ... and {len(rows) - MAX_ROWS} more (--json has them all)")
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("done", "skipped", "failed", "interrupted")
                       if report.count(s) or s in ("done", "failed"))
    lines.append(f"  files: {counts}")
    lines.append(f"  frames: {report.frames} in {report.wall_s:.1f} s ({report.fps:.1f} fps)")
    chosen = Counter(f.model for f in report.files if f.model)
    if chosen:
        counts = ", ".join(f"{n} {name}" for name, n in sorted(chosen.items()))
        lines.append(f"  models: chosen by each file's compression ({counts}; --json says why; --model fixes one)")
    if report.runner:
        lines.append(f"  workers: {report.runner}" + (f"; engine {report.engine}" if report.engine else ""))
    lines.append(f"  output: {report.outdir} (journal in {report.outdir}/.streamsr-batch)")
    return "\n".join(lines)
