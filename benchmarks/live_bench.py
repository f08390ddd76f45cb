"""Live benchmark: 1, 2 and 4 loopback RTSP cameras at 352x288 and 704x576 through a model.

Not part of CI. ``--source rtsp`` (the default) needs the gst-rtsp-server packages (see
tests/rtsp_server.py); the server runs on this machine too (one shared H.264 encoder per size,
every camera a client of it), so its CPU use is part of what is measured. ``--source file``
needs nothing more: every camera plays its own copy of a 10-second H.264 clip of the synthetic
scene at its frame rate, looping, as ``streamsr live`` plays a file (the GPU issue's "files
played at 25 FPS").

    python benchmarks/live_bench.py --cameras 1 2 4 --sizes 352x288 704x576 --seconds 20 --json bench.json
    python benchmarks/live_bench.py --source file --cameras 16 --sizes 1280x720 --engine cuda --batch 16

Prints per configuration: output FPS per camera (mean), drop rate, latency p50/p95/p99.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import contextlib  # noqa: E402
import tempfile  # noqa: E402

from rtsp_server import RtspServer, unavailable_reason  # noqa: E402
from scene_clip import write_scene_clip  # noqa: E402

from streamsr.enhance import EnhanceOptions, open_backend  # noqa: E402
from streamsr.errors import StreamSRError  # noqa: E402
from streamsr.livepipe import Camera, LivePipeline, LivePolicy  # noqa: E402
from streamsr.sources.live_source import LiveOptions, LiveSource  # noqa: E402


class NullOutput:
    def write(self, camera, frame) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def camera_sources(kind: str, size: tuple[int, int], n: int, fps: int):
    """``n`` live sources of one size: clients of one loopback RTSP server, or looping files."""
    w, h = size
    if kind == "rtsp":
        with RtspServer({"cam": (w, h, fps)}) as server:
            yield [LiveSource(server.url("cam"), LiveOptions(), name=f"cam{i}") for i in range(n)]
        return
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        clip = write_scene_clip(Path(tmp) / f"scene-{w}x{h}.mp4", 10 * fps, (w, h), rate=fps, audio=False)
        yield [LiveSource(str(clip), LiveOptions(realtime=True, loop=True), name=f"cam{i}") for i in range(n)]


def run_one(backend, size: tuple[int, int], n: int, fps: int, warmup_s: float, seconds: float,
            ceiling_s: float, batch: int, source: str = "rtsp") -> dict:
    w, h = size
    with camera_sources(source, size, n, fps) as sources:
        cams = [Camera(src) for src in sources]
        pipe = LivePipeline(cams, backend, [NullOutput()], LivePolicy(max_batch=batch, latency_ceiling_s=ceiling_s))
        with pipe:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all(c.metrics.frames_out for c in cams):
                time.sleep(0.1)
            time.sleep(warmup_s)
            for c in cams:
                c.metrics.reset()
            batches0, frames0 = pipe.batches, pipe.batch_frames
            cpu0 = os.times()
            t0 = time.monotonic()
            time.sleep(seconds)
            wall = time.monotonic() - t0
            cpu1 = os.times()
            snaps = [c.metrics.snapshot(whole_run=True) for c in cams]
            batches = pipe.batches - batches0
            mean_batch = (pipe.batch_frames - frames0) / batches if batches else 0.0
    per_cam_fps = [s["frames_out"] / wall for s in snaps]
    frames_in = sum(s["frames_in"] for s in snaps)
    dropped = sum(sum(s["dropped"].values()) for s in snaps)
    lat = [s["latency_s"] for s in snaps]
    return {
        "size": f"{w}x{h}", "cameras": n, "source": source, "source_fps": fps, "seconds": round(wall, 2),
        "fps_out_per_camera": [round(x, 2) for x in per_cam_fps],
        "fps_out_per_camera_min": round(min(per_cam_fps), 2),
        "drop_rate": round(dropped / frames_in, 4) if frames_in else None,
        "latency_ms": {k: (round(max(x[k] for x in lat if x[k] is not None) * 1000, 1)
                           if any(x[k] is not None for x in lat) else float("nan")) for k in ("p50", "p95", "p99")},
        "mean_batch": round(mean_batch, 2),
        "process_cpu_s_per_s": round(((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--sizes", nargs="+", default=["352x288", "704x576"])
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--model", default=None, help="default: the shipped espcn x2")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--precision", default="auto", help="fp32, bf16, int8 or auto (streamsr/backends/precision.py)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--ceiling-ms", type=float, default=500.0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--source", choices=("rtsp", "file"), default="rtsp",
                    help="loopback RTSP cameras (needs gst-rtsp-server) or looping files played at their rate")
    a = ap.parse_args()
    reason = unavailable_reason() if a.source == "rtsp" else None
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    try:
        backend = open_backend(EnhanceOptions(scale=a.scale, model=a.model, engine=a.engine, threads=a.threads,
                                              precision=a.precision))
    except StreamSRError as e:
        print(f"cannot run: {e}", file=sys.stderr)
        return 2
    usable = len(os.sched_getaffinity(0))  # a shell pinned to fewer CPUs than the machine has measures fewer
    print(f"model {backend.card.name} on {backend.describe()}; {usable} of {os.cpu_count()} CPUs usable; "
          f"load {os.getloadavg()}", flush=True)
    rows = []
    header = f"{'size':>9} {'cams':>4} {'fps/cam (min)':>13} {'drop':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'batch':>5} {'cpu':>5}"
    print(header, flush=True)
    for size in a.sizes:
        w, h = (int(v) for v in size.split("x"))
        for n in a.cameras:
            r = run_one(backend, (w, h), n, a.fps, a.warmup, a.seconds, a.ceiling_ms / 1000, a.batch, a.source)
            rows.append(r)
            lat = r["latency_ms"]
            print(f"{r['size']:>9} {n:>4} {r['fps_out_per_camera_min']:>13.1f} {r['drop_rate']:>6.1%} "
                  f"{lat['p50']:>7.0f} {lat['p95']:>7.0f} {lat['p99']:>7.0f} {r['mean_batch']:>5.2f} "
                  f"{r['process_cpu_s_per_s']:>5.2f}", flush=True)
    backend.close()
    result = {"command": " ".join(sys.argv), "machine": platform.platform(), "cpus": os.cpu_count(),
              "cpus_usable": usable, "processor": platform.processor(), "backend": backend.describe(), "model": backend.card.name,
              "load_before": os.getloadavg(), "rows": rows}
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
