"""What the decoder saw: frames lost or damaged, and whether the file ended where it says.

``DecodeWatch`` follows every packet the demuxer reads (all streams) and every frame the
video decoder returns. At the end of the file it judges two things:

- truncation, always an error: fewer video packets than the header announces (MP4, AVI, a
  Matroska ``NUMBER_OF_FRAMES`` tag); the data ending well before the announced video
  duration (MP4, AVI, a Matroska ``DURATION`` tag) or container duration (formats whose header
  states it); or, in formats without an index (MPEG-TS/PS, raw streams), a last frame that the
  decoder could only partly decode;
- decode damage, an error only under the ``fail`` policy: packets the decoder rejected or
  returned no frame for (frames missing from the output), and frames it returned flagged
  corrupt (errors concealed, the damage visible).
"""
from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av

from streamsr.errors import InputError

log = logging.getLogger(__name__)

DecodeErrorPolicy = Literal["warn", "fail"]
DECODE_ERROR_POLICIES: tuple[str, ...] = ("warn", "fail")

# Formats whose header states the duration (rather than an estimate from the bit rate or the
# last timestamp), and formats whose structure or index shows truncation by itself.
_STATED_DURATION = ("matroska", "webm", "mov", "mp4", "avi", "asf", "flv", "mxf")
_INDEXED = ("matroska", "webm", "mov", "mp4", "avi", "asf", "mxf")
_DURATION_TAG = re.compile(r"^(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


@dataclass(frozen=True)
class DecodeReport:
    """Frames that did not come out of the decoder intact."""

    packets: int  # video packets with data
    frames: int  # frames decoded
    missing: int  # packets that gave no frame (rejected, or dropped by the decoder)
    damaged: int  # frames decoded with concealed errors
    first_problem_s: float | None = None

    @property
    def clean(self) -> bool:
        return self.missing == 0 and self.damaged == 0

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{_n(self.missing, 'frame')} could not be decoded and {_are(self.missing)} "
                         "missing from the output")
        if self.damaged:
            parts.append(f"{_n(self.damaged, 'frame')} decoded with errors (damage concealed by the decoder)")
        where = f", the first at {self.first_problem_s:.2f} s" if self.first_problem_s is not None else ""
        return "; ".join(parts) + where


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _are(count: int) -> str:
    return "is" if count == 1 else "are"


def parse_duration_tag(text: str | None) -> float | None:
    """Matroska's ``DURATION`` tag, ``HH:MM:SS.nnnnnnnnn``, in seconds."""
    match = _DURATION_TAG.match((text or "").strip())
    if match is None:
        return None
    h, m, s = match.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def _tag(stream: av.stream.Stream, name: str) -> str | None:
    for key, value in stream.metadata.items():
        if key.upper() == name or key.upper().startswith(name + "-"):
            return value
    return None


def has_index(container: av.container.InputContainer) -> bool:
    """Whether the container's own index or stated length shows a cut; without one (MPEG-TS and
    PS, raw streams, FLV) only the decoder's damage flag on the last frame does."""
    return any(name in container.format.name for name in _INDEXED)


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


class DecodeWatch:
    """Counts packets and frames during one pass over a file; ``finish`` gives the verdict."""

    def __init__(self, path: Path, container: av.container.InputContainer, video: av.video.stream.VideoStream,
                 policy: DecodeErrorPolicy = "warn", indexed_keyframes: list[float] | None = None) -> None:
        if policy not in DECODE_ERROR_POLICIES:
            raise ValueError(f"unknown decode error policy {policy!r}")
        self.path = path
        self.container = container
        self.video = video
        self.policy = policy
        self.packets = 0
        self.frames = 0
        self.failed = 0
        self.damaged = 0
        self.interlaced = False
        self.first_problem_s: float | None = None
        self.indexed_keyframes = indexed_keyframes  # seconds, from the file's index (Matroska Cues)
        self._video_times: list[float] = []  # every video packet's time, seconds
        self._keyframe_times: set[int] = set()  # key frames read, in milliseconds
        self._ends: dict[int, float] = {}  # stream index -> end of its last packet, seconds
        self._last_corrupt: dict[int, bool] = {}  # stream index -> its last packet flagged by the demuxer
        self._flushing = False
        self._last_packet_damaged = False
        self._tail_damaged = False

    # -- during the pass ----------------------------------------------------------------------
    def packet(self, packet: av.Packet) -> None:
        """Every demuxed packet, before it is decoded."""
        if packet.size == 0:
            if packet.stream_index == self.video.index:
                self._flushing = True
            return
        start = packet.pts if packet.pts is not None else packet.dts
        end = _seconds(None if start is None else start + (packet.duration or 0), packet.time_base)
        if end is not None:
            self._ends[packet.stream_index] = max(end, self._ends.get(packet.stream_index, end))
        self._last_corrupt[packet.stream_index] = bool(packet.is_corrupt)
        if packet.stream_index == self.video.index:
            self.packets += 1
            self._last_packet_damaged = False
            at = _seconds(start, packet.time_base)
            if at is not None:
                self._video_times.append(at)
                if packet.is_keyframe:
                    self._keyframe_times.add(round(at * 1000))

    def decoded(self, packet: av.Packet, frames: list[av.VideoFrame]) -> None:
        """The frames one video packet (or the flush) gave."""
        for frame in frames:
            self.frames += 1
            self.interlaced = self.interlaced or bool(frame.interlaced_frame)
            if frame.is_corrupt:
                self.damaged += 1
                self._problem(frame.pts, frame.time_base, "decoded with errors")
                self._last_packet_damaged = True
                if self._flushing:
                    self._tail_damaged = True

    def rejected(self, packet: av.Packet, error: Exception) -> None:
        """The decoder refused a video packet."""
        self.failed += 1
        self._last_packet_damaged = True
        self._problem(packet.pts, packet.time_base, f"could not be decoded ({_reason(error)})")
        log.debug("%s: packet at pts %s rejected: %s", self.path, packet.pts, error)

    def _problem(self, pts: int | None, time_base: Fraction | None, what: str) -> None:
        at = self._relative(_seconds(pts, time_base))
        if self.first_problem_s is None:
            self.first_problem_s = at
        if self.policy == "fail":
            where = f" at {at:.2f} s" if at is not None else ""
            raise InputError(f"{self.path}: a frame{where} {what}; stopped (--on-decode-error fail)")

    def _relative(self, seconds: float | None) -> float | None:
        if seconds is None:
            return None
        start = self.container.start_time
        return seconds - (start / 1_000_000 if start is not None else 0.0)

    # -- at the end ---------------------------------------------------------------------------
    def finish(self) -> DecodeReport:
        """Raise InputError for a truncated input, or for damage under the ``fail`` policy."""
        reason = self._truncation()
        if reason is not None:
            raise InputError(f"{self.path} is truncated: {reason}")
        report = self.report()
        if self.policy == "fail" and not report.clean:
            raise InputError(f"{self.path}: {report.describe()}; stopped (--on-decode-error fail)")
        return report

    def report(self) -> DecodeReport:
        missing = self.failed if self.interlaced else max(self.packets - self.frames, self.failed)
        unread, first_unread = self._unread_by_index()
        first = self.first_problem_s
        if first_unread is not None and (first is None or first_unread < first):
            first = first_unread
        return DecodeReport(self.packets, self.frames, missing + unread, self.damaged, first)

    def _unread_by_index(self) -> tuple[int, float | None]:
        """Frames from the key frames the index lists and the demuxer never gave (damaged data
        it skipped): each counts until the next listed key frame or frame that was read."""
        cues = self.indexed_keyframes
        if not cues:
            return 0, None
        rate = float(self.video.average_rate or self.video.guessed_rate or 25)
        times = sorted(self._video_times)
        end = max(self._ends.get(self.video.index, 0.0), times[-1] if times else 0.0)
        lost, first = 0, None
        for i, t in enumerate(cues):
            if any(round(t * 1000) + d in self._keyframe_times for d in (-1, 0, 1)):
                continue
            later = times[bisect.bisect_right(times, t + 0.0005):][:1]
            stop = min([*later, *(cues[i + 1:i + 2]), end])
            lost += max(1, round((stop - t) * rate))
            first = t if first is None else first
        return lost, first

    def _truncation(self) -> str | None:
        fmt = self.container.format.name
        expected = self._announced_frames()
        if expected and self.packets < expected:
            return f"the container announces {expected} frames and only {self.packets} are there"
        rate = self.video.average_rate or self.video.guessed_rate or 25
        slack = max(3 / float(rate), 0.5)
        # Matroska states durations as end times (from 0); other formats as lengths from the start.
        absolute = "matroska" in fmt
        seen_video = self._seen_video(absolute)
        announced = self._announced_video_s()
        if announced and seen_video is not None and seen_video < announced - slack:
            return f"its video ends at {seen_video:.2f} s of the {announced:.2f} s the container announces"
        if any(name in fmt for name in _STATED_DURATION) and self.container.duration and self._ends:
            total = self.container.duration / 1_000_000
            ends = [self._ends[i] if absolute else self._seen(i) for i in self._ends]
            seen = max(e for e in ends if e is not None)
            if seen < total - slack:
                return f"its data ends at {seen:.2f} s of the {total:.2f} s the container announces"
        if not has_index(self.container):  # no index: the end itself must show the cut
            if self._tail_damaged or self._last_packet_damaged:
                return "it ends in the middle of a frame (the last frame is incomplete)"
            if any(self._last_corrupt.values()):
                return "it ends in the middle of a packet (the demuxer flags the last one incomplete)"
        return None

    def _announced_frames(self) -> int | None:
        if self.video.frames:
            return int(self.video.frames)
        tag = _tag(self.video, "NUMBER_OF_FRAMES")
        return int(tag) if tag and tag.isdigit() else None

    def _announced_video_s(self) -> float | None:
        stated = _seconds(self.video.duration, self.video.time_base)
        if stated:
            return stated
        return parse_duration_tag(_tag(self.video, "DURATION"))

    def _seen_video(self, absolute: bool) -> float | None:
        """Where the video ends: its end time, or its length from the video stream's start
        (as a stated stream duration counts)."""
        end = self._ends.get(self.video.index)
        start = _seconds(self.video.start_time, self.video.time_base)
        if absolute or end is None:
            return end
        if start is None:
            return self._seen(self.video.index)
        return end - start

    def _seen(self, index: int) -> float | None:
        """Where stream ``index`` ends, from the container's start."""
        end = self._ends.get(index)
        return self._relative(end)


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)
