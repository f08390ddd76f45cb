"""Print what `enhance` must preserve, for an input and its output side by side.

    python benchmarks/compare_streams.py INPUT OUTPUT

Per file: each stream's codec, size, decoded frame count (video) or packet count (audio),
and duration from the first to the last timestamp plus the last frame's duration.
"""
from __future__ import annotations

import sys

import av


def describe(path: str) -> list[str]:
    lines = []
    with av.open(path) as container:
        for stream in container.streams:
            if stream.type == "video":
                frames = list(container.decode(stream))
                container.seek(0)
                times = [f.time for f in frames]
                step = (times[-1] - times[-2]) if len(times) > 1 else 0.0
                lines.append(
                    f"video {stream.codec_context.name} {frames[0].width}x{frames[0].height} "
                    f"frames={len(frames)} first={times[0]:.4f}s duration={times[-1] - times[0] + step:.4f}s"
                )
            elif stream.type == "audio":
                packets = [p for p in container.demux(stream) if p.dts is not None]
                container.seek(0)
                start = float(packets[0].pts * packets[0].time_base)
                end = float((packets[-1].pts + packets[-1].duration) * packets[-1].time_base)
                lines.append(
                    f"audio {stream.codec_context.name} packets={len(packets)} first={start:.4f}s "
                    f"duration={end - start:.4f}s"
                )
    return lines


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(path)
        for line in describe(path):
            print("  " + line)
