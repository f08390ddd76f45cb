"""Job throughput of `streamsr batch` against the number of workers, locally and on Ray.

    python benchmarks/batch_bench.py [--workers 1,2,4] [--modes local,ray] [--input DIR]
                                     [--clips 8 --frames 150 --size 320x240] [--json PATH]

Each run enhances the same set of files into a fresh OUTDIR with run_batch (the library call
behind the CLI) and is timed from the call to the return: worker start-up and model loading
are part of the job, as they are for a user. Without ``--input``, a set of synthetic CCTV-like
clips (moving texture, 25 fps, AAC audio) is generated once in a temporary folder. Ray runs on
one local Ray instance started before the first Ray run (its start-up is reported apart) with
as many CPUs as this process may use. For every worker count run in both modes, the table
gives Ray's overhead: Ray wall time / local wall time - 1.

Prints a table and writes JSON (default bench-results/batch-bench.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamsr.backends.base import default_threads  # noqa: E402
from streamsr.batch import BatchOptions, discover, run_batch  # noqa: E402
from streamsr.enhance import EnhanceOptions  # noqa: E402
from scene_clip import write_scene_clip  # noqa: E402


def make_clips(folder: Path, clips: int, frames: int, width: int, height: int) -> None:
    """``clips`` clips in four camera folders, each starting at another point of the scene."""
    for c in range(clips):
        path = folder / f"cam{c % 4}" / f"clip{c}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_scene_clip(path, frames, (width, height), first=7 * c)


def run_once(inputs: list[str], workdir: Path, options: BatchOptions) -> dict[str, object]:
    outdir = workdir / f"out-{time.monotonic_ns()}"
    items = discover(inputs, outdir)
    t0 = time.perf_counter()
    report = run_batch(items, outdir, options)
    wall = time.perf_counter() - t0
    failed = [f.key for f in report.files if f.status != "done"]
    if failed:
        raise SystemExit(f"batch_bench: files failed: {failed}")
    shutil.rmtree(outdir, ignore_errors=True)
    return {"wall_s": round(wall, 3), "frames": report.frames, "fps": round(report.frames / wall, 2),
            "runner": report.runner, "engine": report.engine}


def _arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (default 1,2,4)")
    ap.add_argument("--modes", default="local,ray", help="local, ray or both (default)")
    ap.add_argument("--input", type=Path, default=None, help="a folder of videos (default: synthetic clips)")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--model", default=None)
    ap.add_argument("--engine", default="openvino",
                    help="default openvino, the fastest CPU engine (auto also imports torch in every worker "
                         "to look for a GPU: seconds per worker on a small machine)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench-results" / "batch-bench.json")
    return ap.parse_args()


def _measure(args: argparse.Namespace, cores: int) -> tuple[list[dict[str, object]], str, float | None]:
    """Every (mode, workers) run: the rows, a description of the workload, Ray's start-up time."""
    enhance = EnhanceOptions(scale=args.scale, model=args.model, engine=args.engine)
    rows: list[dict[str, object]] = []
    ray_start_s = None
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        workdir = Path(tmp)
        if args.input is None:
            w, h = (int(x) for x in args.size.split("x"))
            make_clips(workdir / "in", args.clips, args.frames, w, h)
            inputs = [str(workdir / "in")]
            workload = f"{args.clips} synthetic clips of {args.frames} frames at {w}x{h}"
        else:
            inputs = [str(args.input)]
            workload = f"the videos in {args.input}"
        for mode in [m for m in args.modes.split(",") if m]:
            if mode == "ray":
                import ray

                t0 = time.perf_counter()
                ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, configure_logging=False)
                ray_start_s = round(time.perf_counter() - t0, 2)
            try:
                for n in [int(w) for w in args.workers.split(",")]:
                    options = BatchOptions(replace(enhance), workers=n, ray="auto" if mode == "ray" else None,
                                           split_over_s=0)
                    result = run_once(inputs, workdir, options)
                    rows.append({"mode": mode, "workers": n, **result})
                    print(f"  {mode} x{n}: {result['fps']} fps ({result['wall_s']} s)", file=sys.stderr)
            finally:
                if mode == "ray":
                    ray.shutdown()
    local = {r["workers"]: r for r in rows if r["mode"] == "local"}
    for r in rows:
        if r["mode"] == "ray" and r["workers"] in local:
            r["ray_overhead"] = round(r["wall_s"] / local[r["workers"]]["wall_s"] - 1, 3)
    return rows, workload, ray_start_s


def _print_table(rows: list[dict[str, object]]) -> None:
    print("| mode | workers | frames | wall s | job fps | vs 1 worker | Ray overhead |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(x for x in rows if x["mode"] == r["mode"])
        speedup = f"{base['wall_s'] / r['wall_s']:.2f}x"
        overhead = f"{100 * r['ray_overhead']:+.0f}%" if "ray_overhead" in r else ""
        print(f"| {r['mode']} | {r['workers']} | {r['frames']} | {r['wall_s']:.1f} | {r['fps']:.1f} | "
              f"{speedup} | {overhead} |")


def main() -> int:
    args = _arguments()
    cores = default_threads()
    rows, workload, ray_start_s = _measure(args, cores)
    machine = {"cpu": platform.processor() or platform.machine(), "cores_usable": cores,
               "cores_total": os.cpu_count(), "python": platform.python_version()}
    print(f"workload: {workload}; {rows[0]['engine'] if rows else ''}; {cores} usable core(s) of {os.cpu_count()}")
    if ray_start_s is not None:
        print(f"Ray start-up (ray.init, not in the rows): {ray_start_s} s")
    _print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"workload": workload, "machine": machine, "ray_start_s": ray_start_s,
                                     "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
