"""Peak memory (RSS) of `streamsr enhance` on large frames: one fresh process per case.

    python benchmarks/peak_memory.py [--frames N] [--engine auto] [--cases 1080p,4k,...]
                                     [--json benchmarks/results/peak-memory.json] [-- extra enhance args]

Each case writes a synthetic clip (a moving texture, libx264 ultrafast) and runs
``streamsr enhance`` on it in a child Python process, which reports its own peak resident
set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) when it finishes. The table gives
that peak, the frames written, the wall time and the memory plan enhance chose
(streamsr.memory). Clips and outputs live in a temporary folder that is removed afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# name -> (width, height, extra enhance arguments)
CASES = {
    "1080p": (1920, 1080, []),
    "4k": (3840, 2160, []),
    "4000x3000": (4000, 3000, []),
    "1080p-batch100000": (1920, 1080, ["--batch", "100000"]),
}

CHILD = r"""
import json, resource, sys, time
from streamsr.commands.cli import main
t0 = time.perf_counter()
code = main(sys.argv[1:])
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("PEAK-JSON " + json.dumps({"code": code, "peak_mib": peak_kib / 1024, "wall_s": time.perf_counter() - t0}))
"""


def write_clip(path: Path, width: int, height: int, frames: int) -> None:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(frames):
            y = (128 + 60 * np.sin((xx + 3 * i) / 23.0) * np.cos((yy - 2 * i) / 31.0)).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(
                np.concatenate([y, np.full((height // 2, width), 128, np.uint8)]), format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def run_case(clip: Path, out: Path, args: list[str]) -> dict[str, object]:
    cmd = [sys.executable, "-c", CHILD, "enhance", str(clip), "-o", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    result: dict[str, object] = {"stderr": proc.stderr.strip().splitlines()[-3:]}
    for line in proc.stdout.splitlines():
        if line.startswith("PEAK-JSON "):
            result.update(json.loads(line[len("PEAK-JSON "):]))
        elif line.strip().startswith(("frames", "memory")):
            key, _, value = line.strip().partition(" ")
            result[key] = value.strip()
    return result


def machine() -> dict[str, object]:
    info: dict[str, object] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        info["mem_total_gib"] = round(int(fields["MemTotal"].split()[0]) / 2**20, 1)
        info["mem_available_gib"] = round(int(fields["MemAvailable"].split()[0]) / 2**20, 1)
        info["load_average"] = os.getloadavg()
    except (OSError, StopIteration, KeyError):
        pass
    return info


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--engine", default="auto")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("extra", nargs="*", help="more arguments for enhance (after --)")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="streamsr-mem-") as tmp:
        for name in args.cases.split(","):
            width, height, case_args = CASES[name]
            clip = Path(tmp) / f"{width}x{height}.mp4"
            if not clip.exists():
                write_clip(clip, width, height, args.frames)
            t0 = time.perf_counter()
            result = run_case(clip, Path(tmp) / f"{name}_x2.mp4",
                              ["--scale", "2", "--engine", args.engine, *case_args, *args.extra])
            result.update(case=name, size=f"{width}x{height}", args=case_args + args.extra,
                          elapsed_s=round(time.perf_counter() - t0, 1))
            rows.append(result)
            print(f"{name:20s} {width}x{height:<5d} peak {result.get('peak_mib', float('nan')):8.0f} MiB  "
                  f"frames {result.get('frames', '?'):>8s}  wall {result.get('wall_s', float('nan')):6.1f} s  "
                  f"{result.get('memory', '')}", flush=True)
            if result.get("code") != 0:
                print("   failed:", *result["stderr"], sep="\n   ")
    print()
    print("| case | input | peak RSS (MiB) | frames | wall (s) | plan |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['size']} | {r.get('peak_mib', float('nan')):.0f} | {r.get('frames', '?')} | "
              f"{r.get('wall_s', float('nan')):.1f} | {r.get('memory', '')} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "frames": args.frames, "engine": args.engine,
                                         "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
