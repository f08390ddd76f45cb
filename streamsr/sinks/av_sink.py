"""Encode frames with PyAV into a file, copying the input's audio and subtitle streams.

Timestamps pass through untouched (the output stream uses the input's time base), so
variable frame rate stays variable and audio stays in sync. The file is written under a
temporary name and renamed by ``close()``; ``abort()`` leaves nothing behind.

The output keeps the frames' bit depth and chroma subsampling (or ``EncodeSettings.pix_fmt``)
when the encoder can write it, else the nearest layout it can, with one warning naming it.
Each container's needs (AVI's frame-rate time base, HEVC's ``hvc1`` tag in MP4) come from
sinks/containers.py; titles, languages and dispositions from sinks/metadata.py.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamsr.encoding import ENCODERS, VideoEncoding
from streamsr.errors import OutputError, PipelineError
from streamsr.hwcodecs import NVENC
from streamsr.pixfmt import PixelLayout, frame_from_planes, frame_layout, layout_of, nearest_supported, pad_planes
from streamsr.sinks.atomic import commit, discard, temporary_path
from streamsr.sinks.containers import container_for
from streamsr.sinks.metadata import copy_container_metadata, copy_stream_metadata
from streamsr.sinks.video_stream import add_video_stream
from streamsr.types import Frame

log = logging.getLogger(__name__)

__all__ = ["ENCODERS", "AvFileSink", "EncodeSettings", "StreamTiming"]


@dataclass(frozen=True)
class EncodeSettings:
    codec: str = "h264"  # h264 | hevc
    preset: str = "veryfast"
    crf: int = 18
    pix_fmt: str | None = None  # None: the input's layout, or the nearest the encoder supports
    nvenc: bool = False  # encode with NVENC (chosen by hwcodecs.choose_encoder)

    @property
    def encoder(self) -> str:
        return NVENC[self.codec] if self.nvenc else ENCODERS[self.codec]


@dataclass(frozen=True)
class StreamTiming:
    """What the output video stream inherits from the input."""

    time_base: Fraction
    rate: Fraction | None
    colorspace: int | None = None
    color_range: int | None = None
    color_primaries: int | None = None
    color_trc: int | None = None
    rotation: int = 0
    layout: PixelLayout | None = None  # the input's layout (None: that of the frames written)


class AvFileSink:
    def __init__(
        self,
        path: str | Path,
        timing: StreamTiming,
        settings: EncodeSettings | None = None,
        copy_from: str | Path | None = None,
        quiet: bool = False,
    ) -> None:
        self.path = Path(path)
        self.timing = timing
        self.quiet = quiet  # a probe (sinks/preflight.py): the real sink gives the warnings
        self.settings = settings or EncodeSettings()
        if self.settings.codec not in ENCODERS:
            raise OutputError(f"unknown codec {self.settings.codec!r} (choose from {', '.join(ENCODERS)})")
        self._profile = container_for(self.path, self.settings.codec)
        if self.settings.pix_fmt:
            try:
                asked = layout_of(self.settings.pix_fmt)
            except ValueError:
                asked = None
            if asked is None:
                raise OutputError(f"--pix-fmt {self.settings.pix_fmt} is not a planar YUV or gray pixel format "
                                  "(for example yuv420p, yuv422p10le, gray)")
        if self._profile.frame_time_base and not timing.rate:
            raise OutputError(f"{self.path.name}: AVI needs a frame rate and the input has none")
        # AVI counts frames: one tick per frame; every other container keeps the input's time base
        self._time_base = 1 / timing.rate if self._profile.frame_time_base else timing.time_base
        self._in_layout = self._target = PixelLayout()
        self._multiple = (2, 2)
        self.copy_from = Path(copy_from) if copy_from else None
        self.frames = 0
        self.overwrite = True  # False: an output that appears during the run is not replaced
        self._temp: Path | None = None
        self._out: av.container.OutputContainer | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._size: tuple[int, int] | None = None
        self._copy_in: av.container.InputContainer | None = None
        self._copied: CopiedPackets | None = None  # the audio and subtitles, interleaved with the video
        self._copy_map: dict[int, av.stream.Stream] = {}
        self._video_time = 0.0
        self._video_end: float | None = None  # end of the latest frame written, in seconds

    # -- opening ----------------------------------------------------------------------------
    def _open(self, width: int, height: int) -> None:
        self._temp = temporary_path(self.path)
        try:
            self._out = av.open(str(self._temp), mode="w")
        except av.error.FFmpegError as e:
            discard(self._temp)
            raise OutputError(f"cannot write {self.path}: {e}") from None
        t = self.timing
        colour_tags = {attr: getattr(t, attr) for attr in ("colorspace", "color_range", "color_primaries", "color_trc")}
        hevc_tag = self._profile.hevc_tag if self.settings.codec == "hevc" else None
        stream = add_video_stream(self._out, self._encoding(), (width, height), rate=t.rate, time_base=self._time_base,
                                  pix_fmt=self._target.name, colour_tags=colour_tags, codec_tag=hevc_tag)
        if t.rotation:
            stream.set_display_rotation(t.rotation)
        self._video = stream
        self._add_copied_streams()
        try:
            self._out.start_encoding()
        except av.error.FFmpegError as e:
            raise OutputError(f"{self.path.suffix or 'this'} container cannot hold these streams: {e}") from None

    def _encoding(self) -> VideoEncoding:
        s = self.settings  # B-frames off where frames are stored in presentation order (AVI)
        return VideoEncoding(s.codec, preset=s.preset, crf=s.crf, b_frames=self._profile.b_frames, nvenc=s.nvenc)

    def _choose_layout(self, frame: Frame) -> None:
        """The planes' layout, and the nearest one the encoder writes to what was asked for."""
        self._in_layout = frame_layout(frame.planes, frame.bit_depth)
        if self.settings.pix_fmt:
            want = layout_of(self.settings.pix_fmt)
        else:
            want = self.timing.layout or self._in_layout
        encoder = self.settings.encoder
        supported = [f.name for f in av.codec.Codec(encoder, "w").video_formats or []]
        self._target = nearest_supported(want, supported)
        if self._target != want and not self.quiet:
            log.warning("%s cannot encode %s; writing %s, the nearest it supports",
                        encoder, want.describe(), self._target.describe())
        mults = [layout.size_multiple() for layout in (self._in_layout, self._target)]
        self._multiple = max(m[0] for m in mults), max(m[1] for m in mults)

    def _add_copied_streams(self) -> None:
        if self.copy_from is None:
            return
        self._copy_in = av.open(str(self.copy_from))
        copy_container_metadata(self._copy_in, self._out)
        if self._copy_in.streams.video:
            copy_stream_metadata(self._copy_in.streams.video[0], self._video)
        streams = [s for s in self._copy_in.streams if s.type in ("audio", "subtitle")]
        for s in streams:
            try:
                self._copy_map[s.index] = self._out.add_stream_from_template(s)
            except (ValueError, av.error.FFmpegError) as e:
                raise OutputError(
                    f"cannot copy the {s.type} stream ({s.codec_context.name}) into {self.path.suffix}: {e}; "
                    "try a .mkv output"
                ) from None
            copy_stream_metadata(s, self._copy_map[s.index])
        if streams:
            self._copied = CopiedPackets(self._out, self._copy_in.demux(*streams), self._copy_map)

    # -- writing ----------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        if self._out is None:
            self._choose_layout(frame)
            planes = pad_planes(frame.planes, self._in_layout, self._multiple)
            size = planes[0].shape[1], planes[0].shape[0]
            if size != frame.size:
                log.warning("output %dx%d does not fit %s video, which needs sizes in multiples of %dx%d: "
                            "padded to %dx%d", *frame.size, self._target.chroma_label, *self._multiple, *size)
            self._open(*size)
            self._size = size
        else:
            planes = pad_planes(frame.planes, self._in_layout, self._multiple)
            size = planes[0].shape[1], planes[0].shape[0]
            if size != self._size:
                raise PipelineError(f"frame size changed mid-stream from {self._size} to {size}")
        out_frame = self._av_frame(planes)
        out_frame.pts = self._pts(frame.pts)
        out_frame.time_base = self._time_base
        if frame.pts is not None:
            end = float(frame.pts * self.timing.time_base) + (1 / float(self.timing.rate) if self.timing.rate else 0.0)
            self._video_end = end if self._video_end is None else max(self._video_end, end)
        self._mux_video(self._video.encode(out_frame))
        self.frames += 1

    def _av_frame(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> av.VideoFrame:
        """A frame in the encoder's layout: filled in the planes' own layout, then converted
        (depth and chroma only; matrix and range stay) if the encoder needs another one."""
        if self._target.gray and self._target.bits == self._in_layout.bits:
            return frame_from_planes(planes, self._target)
        frame = frame_from_planes(planes, self._in_layout)
        if self._in_layout != self._target:
            frame = frame.reformat(format=self._target.name)
        return frame

    def _pts(self, pts: int | None) -> int | None:
        """The input pts in the output time base: the same number, except for AVI's frame ticks."""
        if pts is None or self._time_base == self.timing.time_base:
            return pts
        return round(pts * self.timing.time_base / self._time_base)

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._out.mux(packet)
            if packet.dts is not None and packet.time_base is not None:
                self._video_time = float(packet.dts * packet.time_base)
        self._mux_copied(until=self._video_time)

    def _mux_copied(self, until: float | None) -> None:
        """Interleave copied packets up to the video's time (all of them when ``until`` is None)."""
        if self._copied is not None:
            self._copied.until(until)

    # -- closing ----------------------------------------------------------------------------
    def close(self, complete: bool = True) -> None:
        """Flush the encoder, finish the file and move it into place.

        ``complete=False`` (an interrupted run) ends the copied audio and subtitles where the
        video ends, instead of copying them to the end of the input.
        """
        if self._out is None:
            return
        try:
            self._mux_video(self._video.encode(None))
            self._mux_copied(until=None if complete else self._video_end)
            self._out.close()
        except BaseException:
            self.abort()
            raise
        finally:
            if self._copy_in is not None:
                self._copy_in.close()
        commit(self._temp, self.path, overwrite=self.overwrite)
        self._out = None

    def abort(self) -> None:
        """Drop everything written; leave nothing at (or beside) the output path."""
        try:
            if self._out is not None:
                self._out.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        finally:
            self._out = None
            if self._copy_in is not None:
                self._copy_in.close()
            if self._temp is not None:
                discard(self._temp)


class CopiedPackets:
    """Packets copied from the input (audio, subtitles), muxed in step with the video: each call
    writes those up to the video's time, so the output stays interleaved."""

    def __init__(self, out: av.container.OutputContainer, packets: Iterator[av.Packet],
                 copy_map: dict[int, av.stream.Stream]) -> None:
        self.out, self.packets, self.copy_map = out, packets, copy_map
        self.held: av.Packet | None = None

    def until(self, seconds: float | None) -> None:
        """Mux the packets whose dts is at most ``seconds`` (all that are left when None)."""
        while True:
            packet = self.held or next(self.packets, None)
            self.held = None
            if packet is None:
                return
            if packet.dts is None:  # the demuxer's empty flush packets
                continue
            if seconds is not None and float(packet.dts * packet.time_base) > seconds:
                self.held = packet
                return
            packet.stream = self.copy_map[packet.stream.index]
            self.out.mux(packet)
