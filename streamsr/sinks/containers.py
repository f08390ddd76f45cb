"""The output containers `enhance` writes, and what each needs to be correct.

Every container listed here is tested for frame count, timestamps and rate
(tests/test_containers.py); any other suffix is refused before any work is done.

- MP4/MOV keep the input's time base, so timestamps are exact. HEVC is tagged ``hvc1``
  (parameter sets in the sample description), which Apple players require; FFmpeg's
  default ``hev1`` is refused by QuickTime and iOS.
- Matroska stores milliseconds (exact for millisecond inputs, within 1 ms otherwise).
- MPEG-TS (.ts, .m2ts) stores 90 kHz ticks and starts the clock a little after zero (the
  muxer's mux delay); the spacing of frames is kept exactly.
- AVI has no timestamps, only a frame rate and a frame order: the stream's time base must be
  one frame (else players read the wrong rate, e.g. 600 fps) and frames must be stored in
  presentation order, so B-frames are off. Variable frame rate cannot be stored and is
  refused up front (:func:`constant_frame_step`). FFmpeg's AVI muxer takes H.264, not HEVC.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from streamsr.errors import InputError, OutputError


@dataclass(frozen=True)
class ContainerProfile:
    name: str  # what users call it
    hevc_tag: str | None = None  # codec_tag for HEVC
    frame_time_base: bool = False  # the stream's time base is one frame (AVI)
    b_frames: bool = True
    codecs: tuple[str, ...] = ("h264", "hevc")


CONTAINERS: dict[str, ContainerProfile] = {
    ".mp4": ContainerProfile("MP4", hevc_tag="hvc1"),
    ".mov": ContainerProfile("QuickTime", hevc_tag="hvc1"),
    ".mkv": ContainerProfile("Matroska"),
    ".avi": ContainerProfile("AVI", frame_time_base=True, b_frames=False, codecs=("h264",)),
    ".ts": ContainerProfile("MPEG-TS"),
    ".m2ts": ContainerProfile("MPEG-TS (Blu-ray)"),
}


def container_for(path: Path, codec: str | None = None) -> ContainerProfile:
    """The profile for ``path``'s suffix; an OutputError naming the supported ones otherwise,
    or when the container cannot hold ``codec``."""
    profile = CONTAINERS.get(path.suffix.lower())
    if profile is None:
        raise OutputError(
            f"cannot write video as {path.suffix or 'a file without a suffix'} ({path.name}); "
            f"supported containers: {', '.join(CONTAINERS)}"
        )
    if codec is not None and codec not in profile.codecs:
        others = [suffix for suffix, p in CONTAINERS.items() if codec in p.codecs]
        raise OutputError(f"{profile.name} ({path.suffix}) cannot hold {codec} video; "
                          f"use --codec {profile.codecs[0]} or one of {', '.join(others)}")
    return profile


def constant_frame_step(path: Path) -> Fraction:
    """The one frame duration (seconds) of ``path``'s first video stream, read from its packets
    without decoding; an OutputError when the frames are not evenly spaced (AVI needs that)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            tb = Fraction(stream.time_base)
            pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
    except (av.error.FFmpegError, IndexError) as e:
        raise InputError(f"cannot read the timestamps of {path}: {e}") from None
    steps = {b - a for a, b in zip(pts, pts[1:])}
    if len(steps) > 1 or 0 in steps:
        raise OutputError(f"{path.name} has a variable frame rate, which AVI cannot store: "
                          "write .mkv or .mp4 instead")
    if not steps:  # a single frame: any rate will do
        rate = stream.average_rate or stream.guessed_rate or 25
        return 1 / Fraction(rate)
    return steps.pop() * tb
