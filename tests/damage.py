"""Damaged inputs for the integrity tests: cut files, corrupt packets, joined recordings.

Every clip is made here (tests/synth.py draws the frames), never read from ../shared.
"""
from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av

from synth import make_frame


def write_h264(path: Path, *, frames: int = 40, width: int = 128, height: int = 96, gop: int = 250,
               first_pts: int = 0, first_index: int = 0, container_options: dict[str, str] | None = None) -> Path:
    """H.264 at 25 fps (time base 1/90000), a key frame every ``gop`` frames, B-frames on;
    frame ``i`` is at ``first_pts + 3600 i`` and shows index ``first_index + i``."""
    out = av.open(str(path), mode="w", options=container_options)
    try:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 90000)
        v.codec_context.options = {"crf": "12", "preset": "veryfast", "g": str(gop), "bf": "2"}
        for i in range(frames):
            frame = make_frame(first_index + i, width, height)
            frame.pts, frame.time_base = first_pts + 3600 * i, Fraction(1, 90000)
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    finally:
        out.close()
    return path


def cut(src: Path, dst: Path, fraction: float = 0.5, align: int = 1, extra: int = 0) -> Path:
    """The first ``fraction`` of ``src``, rounded down to a multiple of ``align`` bytes, plus ``extra``."""
    data = src.read_bytes()
    n = int(len(data) * fraction) // align * align + extra
    dst.write_bytes(data[:n])
    return dst


def video_packets(path: Path) -> list[tuple[int, int, bool]]:
    """(file position, size, key frame) of each video packet, in file order."""
    with av.open(str(path)) as c:
        return [(p.pos, p.size, p.is_keyframe) for p in c.demux(video=0) if p.size]


def corrupt_first_packet(src: Path, dst: Path, mode: str = "random", start: float = 0.0, index: int = 0) -> Path:
    """``src`` with the payload of its first (or ``index``-th) video packet overwritten from
    ``start`` (a fraction of the packet) to its end: ``random`` bytes or ``zero``. In a
    transport stream the 188-byte packet headers are kept so that the demuxer still follows it."""
    pos, size, _ = video_packets(src)[index]
    data = bytearray(src.read_bytes())
    rng = random.Random(1)
    ts = src.suffix == ".ts"
    lo, hi = (pos + 188 * 3, pos + 188 * 8) if ts else (pos + int(size * start), pos + size)
    for i in range(lo, min(hi, len(data))):
        if ts and i % 188 < 12:
            continue
        data[i] = 0 if mode == "zero" else rng.randrange(256)
    dst.write_bytes(bytes(data))
    return dst


def join(parts: list[Path], dst: Path) -> Path:
    """Byte-wise concatenation (a recording that continues in a second transport stream)."""
    dst.write_bytes(b"".join(p.read_bytes() for p in parts))
    return dst
