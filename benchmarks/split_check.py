"""Manual check: a long clip cut into segments joins to exactly the unsplit run.

    python benchmarks/split_check.py [--minutes 10] [--size 96x64] [--segment-seconds 60]

Writes a synthetic clip (moving scene, 25 fps, a keyframe every 2 s, AAC audio), enhances it
once with `streamsr enhance` (unsplit) and once with `streamsr batch` cut into segments, and
compares the two outputs: decoded frame count, every frame's pts and the time base, the audio
packets (payload and pts) and the audio duration. Prints the comparison; exit 1 on a mismatch.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scene_clip import write_scene_clip  # noqa: E402


def describe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts = [f.pts for f in c.decode(s)]
        tb = Fraction(s.time_base)
    with av.open(str(path)) as c:
        audio = [(p.pts, p.duration, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]
        atb = Fraction(c.streams.audio[0].time_base)
    return {"frames": len(pts), "pts": pts, "time_base": tb, "audio": audio,
            "audio_s": float(sum(d for _, d, _ in audio) * atb)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--size", default="96x64")
    ap.add_argument("--segment-seconds", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default=None)
    ap.add_argument("--engine", default="openvino")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    model = ["--model", args.model] if args.model else []
    with tempfile.TemporaryDirectory(prefix="split-check-") as tmp:
        d = Path(tmp)
        src = d / "in" / "long.mp4"
        src.parent.mkdir()
        frames = int(args.minutes * 60 * 25)
        write_scene_clip(src, frames, (w, h), gop=50)
        print(f"input: {src.name}, {frames} frames, {args.minutes:g} min at {w}x{h}")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "streamsr", "enhance", str(src), "-o", str(d / "whole.mp4"),
                        "--engine", args.engine, *model], check=True, capture_output=True)
        t1 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "streamsr", "batch", str(src.parent), "-o", str(d / "out"),
                            "--engine", args.engine, *model, "--workers", str(args.workers), "--split-over", "1",
                            "--segment-seconds", str(args.segment_seconds)], capture_output=True, text=True)
        t2 = time.perf_counter()
        print(r.stdout.strip())
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
        a, b = describe(d / "out" / "long.mp4"), describe(d / "whole.mp4")
        checks = {
            "frames": (a["frames"], b["frames"]),
            "time base": (a["time_base"], b["time_base"]),
            "every pts": (a["pts"] == b["pts"], True),
            "audio packets (pts, payload)": (a["audio"] == b["audio"], True),
            "audio seconds": (a["audio_s"], b["audio_s"]),
        }
        print(f"unsplit enhance {t1 - t0:.1f} s, split batch {t2 - t1:.1f} s")
        ok = True
        for name, (got, want) in checks.items():
            same = got == want
            ok &= same
            print(f"  {name:<30} split {got!s:<12} unsplit {want!s:<12} {'same' if same else 'DIFFERENT'}")
        print("OK: the joined file equals the unsplit run" if ok else "MISMATCH")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
