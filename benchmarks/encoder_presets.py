"""The encoder's share of an `enhance` run: x264 settings on the model's own output frames.

    python benchmarks/encoder_presets.py [--input ../shared/data/video/vtest.avi] [--frames 60] [--json out.json]

Upscales the first frames of the clip x2 with the default engine (fp32), then encodes those same
frames with each x264 setting on one thread and prints, per setting: CPU time per frame, bitrate
at the clip's rate, and Y-PSNR of the decoded file against the frames that went in (what the
encoder loses of the model's picture). On 2 cores an `enhance` run spends the encoder's CPU time
instead of inference's, so its end-to-end / inference-only ratio follows from these and the
inference speed. Pause a running training first (kill -STOP), or the two share the cores.
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamsr  # noqa: E402

SETTINGS = [  # (preset, crf): the default first
    ("veryfast", 18), ("veryfast", 20), ("superfast", 18), ("superfast", 20), ("superfast", 22),
    ("ultrafast", 18), ("ultrafast", 22), ("ultrafast", 26),
]


def model_frames(clip: Path, count: int) -> tuple[list[av.VideoFrame], Fraction]:
    with av.open(str(clip)) as container, streamsr.Upscaler(scale=2, precision="fp32") as sr:
        stream = container.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        frames = []
        for frame in container.decode(stream):
            frames.append(sr.upscale_frame(frame.reformat(format="yuv420p")))
            if len(frames) == count:
                break
    return frames, rate


def luma(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray()[: frame.height].astype(np.float64)


def encode(frames: list[av.VideoFrame], rate: Fraction, preset: str, crf: int) -> dict[str, float]:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        stream.options = {"preset": preset, "crf": str(crf), "threads": "1"}
        start = time.process_time()
        for i, frame in enumerate(frames):
            copy = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
            copy.pts = i
            out.mux(stream.encode(copy))
        out.mux(stream.encode())
        cpu = time.process_time() - start
    data = buffer.getvalue()
    with av.open(io.BytesIO(data)) as decoded:
        errors = [np.mean((luma(a) - luma(b)) ** 2) for a, b in zip(frames, decoded.decode(video=0))]
    if len(errors) != len(frames):
        raise RuntimeError(f"{preset} crf {crf}: {len(errors)} frames decoded of {len(frames)}")
    return {"preset": preset, "crf": crf, "cpu_ms_per_frame": round(cpu / len(frames) * 1000, 2),
            "mbit_per_s": round(len(data) * 8 * float(rate) / len(frames) / 1e6, 2),
            "y_psnr_db": round(float(10 * np.log10(255**2 / np.mean(errors))), 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", type=Path, default=Path("../shared/data/video/vtest.avi"))
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    if not a.input.is_file():
        print(f"encoder_presets: {a.input}: no such file", file=sys.stderr)
        return 2
    frames, rate = model_frames(a.input, a.frames)
    print(f"{len(frames)} frames of {frames[0].width}x{frames[0].height} (x2 of {a.input.name}), libx264 on one thread")
    print(f"{'preset':<10} {'crf':>3} {'CPU ms/frame':>12} {'Mbit/s':>7} {'Y-PSNR dB':>9}")
    rows = []
    for preset, crf in SETTINGS:
        row = encode(frames, rate, preset, crf)
        rows.append(row)
        print(f"{preset:<10} {crf:>3} {row['cpu_ms_per_frame']:>12.1f} {row['mbit_per_s']:>7.1f} {row['y_psnr_db']:>9.2f}",
              flush=True)
    if a.json:
        a.json.write_text(json.dumps({"command": " ".join(sys.argv), "machine": platform.platform(),
                                      "processor": platform.processor(), "input": str(a.input), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
