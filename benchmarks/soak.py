"""Soak run: 2 loopback RTSP cameras for 30 minutes, one server restarted every 5 minutes.

Not part of CI. Checks what a weeks-long process needs: resident memory grows by less than
10 % (after a warm-up), no thread or file-descriptor leak, every outage recovered.

    python benchmarks/soak.py --minutes 30 --restart-every 300 --json soak.json
    python benchmarks/soak.py --minutes 2 --restart-every 30      # a quick check

Exit status 0 when every check passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from rtsp_server import RtspServer, unavailable_reason  # noqa: E402

from streamsr.enhance import EnhanceOptions, open_backend  # noqa: E402
from streamsr.livepipe import Camera, LivePipeline, LivePolicy  # noqa: E402
from streamsr.livepipe.metrics import LiveStatus  # noqa: E402
from streamsr.sinks.http_preview import PreviewServer  # noqa: E402
from streamsr.sources.live_source import LiveOptions, LiveSource  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample() -> dict[str, float]:
    return {"t": time.monotonic(), "rss_mib": rss_mib(), "threads": threading.active_count(),
            "tasks": len(os.listdir("/proc/self/task")), "fds": len(os.listdir("/proc/self/fd"))}


def _arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--restart-every", type=float, default=300.0, metavar="S")
    ap.add_argument("--down-for", type=float, default=3.0, metavar="S", help="how long a restart keeps a server down")
    ap.add_argument("--size", default="352x288")
    ap.add_argument("--warmup", type=float, default=60.0, metavar="S", help="memory baseline taken after this")
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--json", type=Path, default=None)
    return ap.parse_args()


def main() -> int:
    a = _arguments()
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    w, h = (int(v) for v in a.size.split("x"))
    backend = open_backend(EnhanceOptions(scale=2, engine=a.engine))
    servers = [RtspServer({"cam": (w, h, 25)}).start() for _ in range(2)]
    cams = [Camera(LiveSource(s.url("cam"), LiveOptions(), name=f"cam{i}")) for i, s in enumerate(servers)]
    pipe = LivePipeline(cams, backend, policy=LivePolicy())
    preview = PreviewServer([c.name for c in cams], LiveStatus(lambda: pipe.metrics), "127.0.0.1", 0)
    pipe.outputs.append(preview)
    try:
        pipe.start()
        samples, baseline, restarts = _soak(a, servers)
        time.sleep(5)  # let the last reconnect land
        final = sample()
        snaps = [c.metrics.snapshot(whole_run=True) for c in cams]
    finally:
        pipe.stop()
        pipe.join()
        preview.close()
        for s in servers:
            s.stop()
        backend.close()
    result = _verdict(a, baseline or samples[0], final, restarts, snaps)
    print(json.dumps(result, indent=2))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(result["checks"].values()) else 1


def _soak(a: argparse.Namespace, servers: list) -> tuple[list[dict[str, float]], dict[str, float] | None, int]:
    """Run for ``a.minutes``, sampling every 5 s and restarting one server in turn every
    ``a.restart_every``; the samples, the baseline after the warm-up and the restarts."""
    samples, restarts, baseline = [], 0, None
    t_start = time.monotonic()
    end = t_start + a.minutes * 60
    next_restart = t_start + a.restart_every
    while time.monotonic() < end:
        time.sleep(min(5.0, max(0.0, end - time.monotonic())))
        s = sample()
        samples.append(s)
        if baseline is None and s["t"] - t_start >= a.warmup:
            baseline = s
        if time.monotonic() >= next_restart and time.monotonic() + 30 < end:
            server = servers[restarts % 2]
            server.stop()
            time.sleep(a.down_for)
            server.start()
            restarts += 1
            next_restart = time.monotonic() + a.restart_every
            print(f"{time.monotonic() - t_start:7.0f} s: restarted server {restarts % 2 or 2} ({restarts} so far); "
                  f"rss {s['rss_mib']:.0f} MiB, threads {s['threads']}, fds {s['fds']}", flush=True)
    return samples, baseline, restarts


def _verdict(a: argparse.Namespace, baseline: dict[str, float], final: dict[str, float], restarts: int,
             snaps: list[dict]) -> dict:
    growth = (final["rss_mib"] - baseline["rss_mib"]) / baseline["rss_mib"]
    outages = sum(s["outages"] for s in snaps)
    reconnects = sum(s["reconnects"] for s in snaps)
    checks = {
        "rss_growth_under_10pct": growth < 0.10,
        "no_thread_leak": final["threads"] <= baseline["threads"] and final["tasks"] <= baseline["tasks"] + 2,
        "no_fd_leak": final["fds"] <= baseline["fds"] + 2,
        "every_outage_recovered": outages == restarts == reconnects and all(s["connected"] for s in snaps),
    }
    return {"command": " ".join(sys.argv), "minutes": a.minutes, "restarts": restarts, "outages": outages,
            "reconnects": reconnects, "baseline": baseline, "final": final, "rss_growth": round(growth, 4),
            "cameras": {s["camera"]: {k: s[k] for k in ("frames_in", "frames_out", "dropped", "latency_s",
                                                        "outages", "reconnects", "uptime_s")} for s in snaps},
            "checks": checks}


if __name__ == "__main__":
    sys.exit(main())
