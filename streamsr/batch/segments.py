"""Long files in segments: plan the cuts at keyframes, decode one segment, join the results.

Plan: the video packets are read (not decoded) once; every packet needs a pts. The file is
cut at keyframes near every ``segment_s`` seconds. Segment i holds the frames whose pts lies
in [start_i, start_i+1): that is exact whatever the reordering, and the plan records each
segment's frame count and a hash of its sorted pts.

Segment: decoding seeks to the segment's keyframe (or before it), skips frames before the
start and stops at the first frame at or after the end. Frames keep their pts and the
source's time base. The frames decoded must be exactly the planned ones (count and pts
hash), or the segment fails with SplitError (the job then processes the file whole).

Join: the segments' video packets, in order, with the source's audio and subtitle packets
copied once, are muxed into a temporary file beside the target, renamed when complete. The
MP4 muxer may move a segment's timestamps by a constant (edit lists count in 1/1000 s);
the join puts each segment back at its planned first pts and checks every pts against the
plan, so the result has the pts of an unsplit run, frame for frame.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamsr.errors import OutputError, PipelineError
from streamsr.sinks.atomic import commit, discard, temporary_path
from streamsr.sinks.av_sink import CopiedPackets
from streamsr.sources.av_source import AvFileSource
from streamsr.sources.deinterlace import is_interlaced
from streamsr.types import VideoInfo

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".mp4"  # exact pts in the source's time base (with the join's correction)


class SplitError(PipelineError):
    """A segment did not decode or join to exactly its planned frames; the file is done whole."""


class JoinCancelled(PipelineError):
    """The job stopped while a join was being written; nothing was left at the target."""


@dataclass(frozen=True)
class Probe:
    seconds: float | None
    frames: int | None  # from the container, or estimated from duration and rate


def probe(path: Path) -> Probe | None:
    """Duration and frame count from the container's header; None when it cannot be read."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return None
            s = c.streams.video[0]
            seconds = None
            if s.duration is not None and s.time_base is not None:
                seconds = float(s.duration * s.time_base)
            elif c.duration is not None:
                seconds = c.duration / av.time_base
            frames = s.frames or None
            rate = s.average_rate or s.guessed_rate
            if frames is None and seconds is not None and rate:
                frames = int(round(seconds * float(rate)))
            return Probe(seconds, frames)
    except (av.error.FFmpegError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class SegmentSpec:
    index: int
    start: int | None  # first pts (a keyframe's), inclusive; None: from the file's start
    end: int | None  # pts where the next segment starts, exclusive; None: to the end
    frames: int
    first_pts: int
    pts_hash: str


@dataclass(frozen=True)
class SegmentPlan:
    time_base: Fraction
    segments: tuple[SegmentSpec, ...]

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.segments)

    @property
    def id(self) -> str:
        """Identifies the cuts; segments done under another plan are not reused."""
        text = f"{self.time_base}|" + "|".join(f"{s.start},{s.end},{s.frames},{s.pts_hash}" for s in self.segments)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def pts_hash(pts: list[int] | np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(pts, dtype="<i8")).tobytes()).hexdigest()[:16]


def _interlaced(path: Path) -> bool:
    """As enhance decides: the stream's field order or its first frame's flag (sources/deinterlace.py)."""
    with av.open(str(path)) as c:
        if not c.streams.video:
            return False
        stream = c.streams.video[0]
        first = next(c.decode(stream), None)
        return first is not None and is_interlaced(stream, first)


def plan_segments(path: Path, segment_s: float,
                  stop: threading.Event | None = None) -> tuple[SegmentPlan | None, str]:
    """Cuts for ``path`` into segments of about ``segment_s`` seconds, or (None, why not)."""
    if _interlaced(path):
        return None, "interlaced: deinterlacing needs the fields on both sides of a cut"
    with av.open(str(path)) as c:
        if not c.streams.video:
            return None, "no video stream"
        stream = c.streams.video[0]
        tb = Fraction(stream.time_base) if stream.time_base else None
        if tb is None:
            return None, "the video stream has no time base"
        pts: list[int] = []
        keys: list[int] = []  # decode-order positions of keyframes
        for packet in c.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None, "some video packets have no timestamp"
            if packet.is_keyframe:
                keys.append(len(pts))
            pts.append(packet.pts)
            if stop is not None and len(pts) % 10000 == 0 and stop.is_set():
                return None, "the job stopped"
    if len(set(pts)) != len(pts):
        return None, "some video frames share a timestamp"
    order = np.asarray(pts, dtype=np.int64)
    seen_max = np.maximum.accumulate(order)  # largest pts decoded so far, in decode order
    step = segment_s / tb
    first = int(order.min())
    bounds: list[int] = []
    for position in keys[1:]:
        key_pts = int(order[position])
        # a clean cut: every packet before the keyframe (decode order) is shown before it
        if position == 0 or seen_max[position - 1] >= key_pts:
            continue
        if key_pts - (bounds[-1] if bounds else first) >= step:
            bounds.append(key_pts)
    last = int(order.max())
    if bounds and last - bounds[-1] < step / 2:  # no short tail segment
        bounds.pop()
    if not bounds:
        return None, f"no keyframe to cut at (segments of {segment_s:g} s)"
    sorted_pts = np.sort(order)
    edges = [None, *bounds, None]
    specs = []
    for i in range(len(edges) - 1):
        lo = 0 if edges[i] is None else int(np.searchsorted(sorted_pts, edges[i], "left"))
        hi = len(sorted_pts) if edges[i + 1] is None else int(np.searchsorted(sorted_pts, edges[i + 1], "left"))
        part = sorted_pts[lo:hi]
        specs.append(SegmentSpec(i, edges[i], edges[i + 1], len(part), int(part[0]), pts_hash(part)))
    return SegmentPlan(tb, tuple(specs)), ""


class SpanSource(AvFileSource):
    """The frames of one segment of a file, with their own pts, as AvFileSource gives them."""

    def __init__(self, path: str | Path, spec: SegmentSpec, **kwargs: object) -> None:
        self.spec = spec
        self.decoded_pts: list[int] = []
        super().__init__(path, **kwargs)

    def _make_info(self) -> VideoInfo:
        return replace(super()._make_info(), frames=self.spec.frames)

    def _decode(self) -> Iterator[av.VideoFrame]:
        spec = self.spec
        frames = self._span(spec.start)
        try:
            for frame in frames:
                if not self.decoded_pts:
                    self._first_frame = frame
                self.decoded_pts.append(frame.pts)
                yield frame
        except av.error.FFmpegError as e:
            raise SplitError(f"{self.path}: segment {spec.index} failed to decode: {e}") from None
        if len(self.decoded_pts) != spec.frames or pts_hash(self.decoded_pts) != spec.pts_hash:
            raise SplitError(f"{self.path}: segment {spec.index} decoded {len(self.decoded_pts)} frames, "
                             f"not the {spec.frames} planned")

    def _span(self, start: int | None) -> Iterator[av.VideoFrame]:
        stream, end = self._stream, self.spec.end
        if start is not None:
            self._container.seek(start, stream=stream, backward=True, any_frame=False)
        first = True
        for frame in self._container.decode(stream):
            if frame.pts is None:
                raise SplitError(f"{self.path}: a frame without a timestamp in segment {self.spec.index}")
            if first and start is not None and frame.pts > start:
                log.info("%s: the seek to %d landed at %d; decoding from the start", self.path, start, frame.pts)
                self._container.seek(0, backward=True)
                yield from self._span(None)
                return
            first = False
            if start is not None and frame.pts < start:
                continue
            if self.spec.start is not None and frame.pts < self.spec.start:
                continue
            if end is not None and frame.pts >= end:
                return
            yield frame


def _copied_streams(source: av.container.InputContainer) -> list[av.stream.Stream]:
    return [s for s in source.streams if s.type in ("audio", "subtitle")]


def check_copy(src: Path, target: Path, scratch: Path) -> None:
    """Fail before any work when the output container cannot take the input's audio or
    subtitles (e.g. SubRip into MP4), with AvFileSink's message."""
    temp = temporary_path(scratch / f"check{target.suffix}")
    try:
        with av.open(str(src)) as source, av.open(str(temp), mode="w") as out:
            video = out.add_stream("libx264", rate=25)
            video.width, video.height = 64, 64
            video.pix_fmt = "yuv420p"
            for s in _copied_streams(source):
                try:
                    out.add_stream_from_template(s)
                except (ValueError, av.error.FFmpegError) as e:
                    raise OutputError(
                        f"cannot copy the {s.type} stream ({s.codec_context.name}) into {target.suffix}: {e}; "
                        "try a .mkv output"
                    ) from None
            try:
                out.start_encoding()
            except av.error.FFmpegError as e:
                raise OutputError(f"{target.suffix} container cannot hold these streams: {e}") from None
    finally:
        discard(temp)


def _segment_packets(path: Path, spec: SegmentSpec, time_base: Fraction) -> Iterator[av.Packet]:
    """A segment file's video packets, timestamps in ``time_base`` at their planned place.

    Two passes: the first checks every pts against the plan and finds the muxer's shift,
    the second yields the packets (a segment is not held in memory).
    """
    def read() -> Iterator[tuple[av.Packet, int, int]]:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            ratio = Fraction(stream.time_base) / time_base
            for p in c.demux(stream):
                if not p.size:
                    continue
                pts, dts = p.pts * ratio, (p.dts if p.dts is not None else p.pts) * ratio
                if pts.denominator != 1 or dts.denominator != 1:
                    raise SplitError(f"segment {spec.index}: timestamps do not map exactly onto {time_base}")
                yield p, int(pts), int(dts)

    all_pts = [pts for _, pts, _ in read()]
    if not all_pts:
        raise SplitError(f"segment {spec.index} ({path.name}) holds no video")
    offset = spec.first_pts - min(all_pts)
    if len(all_pts) != spec.frames or pts_hash([p + offset for p in all_pts]) != spec.pts_hash:
        raise SplitError(f"segment {spec.index} ({path.name}) holds {len(all_pts)} frames, "
                         f"not the {spec.frames} planned")
    for packet, pts, dts in read():
        packet.pts, packet.dts = pts + offset, dts + offset
        packet.time_base = time_base
        yield packet


def _encoding(path: Path) -> tuple[str, bytes | None, int, int, str | None]:
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return cc.name, cc.extradata, cc.width, cc.height, cc.format.name if cc.format else None


def check_same_encoding(files: list[Path]) -> None:
    """One output stream needs one encoder setup: segments from workers that chose another
    encoder (NVENC on one machine, x264 on another) or other parameters cannot be joined."""
    first = _encoding(files[0])
    for index, path in enumerate(files[1:], start=1):
        other = _encoding(path)
        if other != first:
            what = f"{other[0]}, not {first[0]}" if other[0] != first[0] else "other encoder parameters"
            raise SplitError(f"segment {index} was encoded with {what}")


def join_segments(src: Path, plan: SegmentPlan, files: list[Path], target: Path,
                  stop: threading.Event | None = None) -> int:
    """Mux the segments' video and ``src``'s audio/subtitles into ``target``; returns the frames."""
    tb = plan.time_base
    check_same_encoding(files)
    temp = temporary_path(target)
    written = 0
    try:
        with av.open(str(files[0])) as first, av.open(str(src)) as source:
            out = av.open(str(temp), mode="w")
            try:
                video = out.add_stream_from_template(first.streams.video[0])
                video.time_base = tb
                copy_map = {}
                for s in _copied_streams(source):
                    try:
                        copy_map[s.index] = out.add_stream_from_template(s)
                    except (ValueError, av.error.FFmpegError) as e:
                        raise OutputError(f"cannot copy the {s.type} stream ({s.codec_context.name}) into "
                                          f"{target.suffix}: {e}; try a .mkv output") from None
                out.start_encoding()
                copied = source.demux(*[source.streams[i] for i in copy_map]) if copy_map else iter(())
                pending = CopiedPackets(out, copied, copy_map)
                last_dts: int | None = None
                for spec, path in zip(plan.segments, files):
                    if stop is not None and stop.is_set():
                        raise JoinCancelled(f"stopped while joining {target}")
                    for packet in _segment_packets(path, spec, tb):
                        if last_dts is not None and packet.dts <= last_dts:
                            if last_dts + 1 > packet.pts:
                                raise SplitError(f"segment {spec.index} starts before the previous one ends")
                            packet.dts = last_dts + 1
                        last_dts = packet.dts
                        pending.until(float(packet.dts * tb))
                        packet.stream = video
                        out.mux(packet)
                        written += 1
                pending.until(None)
            finally:
                out.close()
    except BaseException:
        discard(temp)
        raise
    commit(temp, target)
    return written
