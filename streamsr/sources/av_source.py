"""Video files through PyAV: decode to Y/Cb/Cr planes with exact timestamps.

Planes keep the input's bit depth and chroma subsampling (pixfmt.working_layout): 10-bit
4:2:2 comes out as uint16 planes with half-width chroma. Interlaced input is deinterlaced
first (sources/deinterlace.py) unless ``deinterlace="off"``.
"""
from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamsr.colour import RGB_SOURCE_COLORSPACE, RGB_SOURCE_RANGE
from streamsr.errors import ConfigError, InputError
from streamsr.pixfmt import PixelLayout, is_full_range_format, layout_of, read_planes, working_layout
from streamsr.sources.deinterlace import DEINTERLACE_MODES, Deinterlacer, DeinterlaceMode, is_interlaced
from streamsr.sources.integrity import DecodeErrorPolicy, DecodeReport, DecodeWatch, has_index
from streamsr.sources.mkv_index import keyframe_times
from streamsr.sources.structure import shortfall
from streamsr.types import Frame, VideoInfo

log = logging.getLogger(__name__)

# Decoded formats whose planes we use as they are; anything else is converted to yuv420p.
_NATIVE_FORMATS = {"yuv420p", "yuvj420p"}


def plane_array(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A copy of one 8-bit plane as (height, width), without the line padding."""
    raw = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
    return raw[:, : plane.width].copy()


def frame_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if frame.format.name not in _NATIVE_FORMATS:
        frame = frame.reformat(format="yuv420p")
    return plane_array(frame.planes[0]), plane_array(frame.planes[1]), plane_array(frame.planes[2])


def check_not_a_pipe(path: Path) -> None:
    """A file is read twice (video, then the streams copied into the output) and its end is
    checked against its header: a pipe or a device allows neither."""
    if str(path) == "-":
        raise InputError("reading video from a pipe (-) is not supported: save it to a file first")
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # check_readable_file says what is wrong
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise InputError(f"reading video from a pipe ({path}) is not supported: save it to a file first")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise InputError(f"{path} is a device, not a file (for a camera, use streamsr live)")


def check_readable_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a directory, not a video: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"input is empty (0 bytes): {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input is not readable (permission denied): {path}")


def check_complete(path: Path) -> None:
    """Refuse a file whose structure shows that it was cut short (before anything is decoded)."""
    try:
        reason = shortfall(path)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    if reason is not None:
        raise InputError(f"{path} is truncated: {reason}")


class AvFileSource:
    """Decodes every frame of a file's first video stream, in order, none dropped.

    A truncated input raises InputError (up front when its structure shows it, else at its
    end). Frames the decoder cannot give back intact are counted in ``report`` after the
    last frame; with ``on_decode_error="fail"`` the first one raises InputError instead.

    ``layout`` forces the planes' layout (default: the input's own, see ``self.layout``);
    ``deinterlace``: ``auto`` deinterlaces flagged interlaced input one frame per frame,
    ``frame``/``field`` deinterlace whatever the flags say (one frame per frame / per field),
    ``off`` never does. ``hw_decoder`` maps the stream's codec to the NVDEC decoder to use
    (``h264`` -> ``h264_cuvid``) or to None for FFmpeg's CPU decoder (hwcodecs.choose_decoder).
    """

    def __init__(self, path: str | Path, on_decode_error: DecodeErrorPolicy = "warn",
                 layout: PixelLayout | None = None, deinterlace: DeinterlaceMode = "auto",
                 hw_decoder: Callable[[str], str | None] | None = None) -> None:
        if deinterlace not in DEINTERLACE_MODES:
            raise ConfigError(f"unknown deinterlace mode {deinterlace!r} (choose from {', '.join(DEINTERLACE_MODES)})")
        self.path = Path(path)
        self.on_decode_error = on_decode_error
        self.report: DecodeReport | None = None  # set when the last frame has been decoded
        check_not_a_pipe(self.path)
        check_readable_file(self.path)
        check_complete(self.path)
        try:
            self._container = av.open(str(self.path), mode="r")
        except av.error.FFmpegError as e:
            raise InputError(f"cannot read {self.path} as video: {_reason(e)}") from None
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        # Frame threading loses the decoder's damage flag on a cut-off last frame now and then
        # (1 run in 6 on a cut transport stream), and without an index that flag is the only
        # sign of the cut; slice threading keeps it, at a decode cost small beside inference.
        self._stream.thread_type = "AUTO" if has_index(self._container) else "SLICE"
        try:
            self._decoder = self._open_decoder(hw_decoder(self._stream.codec_context.name) if hw_decoder else None)
        except BaseException:
            self._container.close()
            raise
        self._frames = self._decode()
        try:
            self._first = self._first_frame = next(self._frames)
        except StopIteration:
            self.close()
            raise InputError(f"{self.path} has a video stream but no decodable frame") from None
        except InputError:
            self.close()
            raise
        first = self._first_frame
        self.rgb_source = layout_of(first.format) is None
        self.layout = layout or working_layout(first.format)
        # full range: the JPEG formats (yuvj420p) or a stream that says so; RGB is converted to limited
        self.full_range = not self.rgb_source and (
            is_full_range_format(first.format.name) or _int(first.color_range) == 2)
        self.deinterlacer = self._make_deinterlacer(deinterlace)
        self.info = self._make_info()

    def _open_decoder(self, name: str | None) -> av.codec.context.CodecContext | None:
        """A decoder of its own (NVDEC) fed the stream's packets, or None for the stream's own."""
        if name is None:
            return None
        ctx = av.CodecContext.create(name, "r")
        ctx.extradata = self._stream.codec_context.extradata
        try:
            ctx.open()
        except (av.error.FFmpegError, OSError) as e:
            raise ConfigError(f"{name} cannot decode {self.path}: {getattr(e, 'strerror', None) or e}") from None
        return ctx

    @property
    def decoder_name(self) -> str:
        """The FFmpeg decoder that decodes the video (h264, h264_cuvid, ...)."""
        return (self._decoder or self._stream.codec_context).name

    def _make_deinterlacer(self, mode: DeinterlaceMode) -> Deinterlacer | None:
        if mode == "off":
            return None
        interlaced = is_interlaced(self._stream, self._first_frame)
        if mode == "auto" and not interlaced:
            return None
        per_field = mode == "field"
        only_flagged = mode == "auto" and bool(self._first_frame.interlaced_frame)
        try:
            d = Deinterlacer(self._stream, self._first_frame, per_field=per_field, only_flagged=only_flagged)
        except (av.error.FFmpegError, ValueError) as e:
            self.close()
            raise InputError(f"{self.path}: cannot deinterlace this video: {e}") from None
        rate = "one frame per field (twice the frame rate)" if per_field else "one frame per frame"
        what = f"interlaced ({d.description})" if interlaced else "not flagged interlaced"
        log.warning("%s is %s: deinterlacing with bwdif, %s%s", self.path.name, what, rate,
                    "" if per_field else "; --deinterlace field gives one per field")
        return d

    def _make_info(self) -> VideoInfo:
        s = self._stream
        cc = s.codec_context
        rate = s.average_rate or s.guessed_rate or s.base_rate
        rate = Fraction(rate) if rate else None
        time_base = Fraction(s.time_base) if s.time_base else None
        frames = s.frames or None
        if self.deinterlacer is not None and self.deinterlacer.per_field:
            rate = rate * 2 if rate else None
            time_base = self.deinterlacer.time_base
            frames = frames * 2 if frames else None
        return VideoInfo(
            width=self._first_frame.width,
            height=self._first_frame.height,
            rate=rate,
            time_base=time_base,
            frames=frames,
            is_live=False,
            pix_fmt=self._first_frame.format.name,
            colour_matrix=str(int(cc.colorspace)) if cc.colorspace is not None else None,
            colour_range=str(int(cc.color_range)) if cc.color_range is not None else None,
            rotation=int(round(self._first_frame.rotation or 0)),
        )

    @property
    def first_frame(self) -> av.VideoFrame:
        """The first decoded frame (before deinterlacing): its format and colour tags."""
        return self._first_frame

    @property
    def per_field(self) -> bool:
        """Deinterlacing one frame per field (twice the input's rate)."""
        return self.deinterlacer is not None and self.deinterlacer.per_field

    @property
    def codec_context(self) -> av.codec.context.CodecContext:
        return self._stream.codec_context

    @property
    def stream(self) -> av.video.stream.VideoStream:
        return self._stream

    def _decode(self) -> Iterator[av.VideoFrame]:
        cues = keyframe_times(self.path) if "matroska" in self._container.format.name else None
        watch = DecodeWatch(self.path, self._container, self._stream, self.on_decode_error, cues)
        video = self._stream.index
        packets = self._container.demux()  # every stream: their ends show where the file stops
        while True:
            try:
                packet = next(packets, None)
            except av.error.FFmpegError as e:
                raise InputError(f"{self.path}: reading stopped after {watch.frames} frames: {_reason(e)} "
                                 "(the file is damaged or truncated)") from None
            if packet is None:
                break
            watch.packet(packet)
            if packet.stream_index != video:
                continue
            try:
                frames = self._decoder.decode(packet) if self._decoder is not None else packet.decode()
            except av.error.FFmpegError as e:
                if packet.size == 0 and isinstance(e, av.error.EOFError):
                    continue  # a second flush packet, to a decoder of our own already flushed
                watch.rejected(packet, e)
                continue
            watch.decoded(packet, frames)
            yield from frames
        self.report = watch.finish()

    def __iter__(self) -> Iterator[Frame]:
        tb = Fraction(self._stream.time_base) if self._stream.time_base else None
        rate = Fraction(self._stream.average_rate or self._stream.guessed_rate or 25)
        frame_tb = tb if tb is not None else 1 / rate
        out_tb = self.deinterlacer.time_base if self.deinterlacer is not None else frame_tb
        pending = [self._first] if self._first is not None else []
        self._first = None
        index = 0
        for decoded, frame in enumerate(self._progressive(_chain(pending, self._frames), rate, frame_tb)):
            pts = frame.pts
            if pts is None:  # containers without timestamps: derive them from the rate
                pts = int(index / (self.info.rate or 25) / out_tb)
            yield Frame(
                index=index,
                planes=self._planes(frame),
                pts=pts,
                time_base=out_tb,
                captured_at=time.monotonic(),
                bit_depth=self.layout.bits,
                full_range=self.full_range,
            )
            index += 1

    def _progressive(self, frames: Iterator[av.VideoFrame], rate: Fraction, tb: Fraction) -> Iterator[av.VideoFrame]:
        """Decoded frames, through the deinterlacer when there is one."""
        if self.deinterlacer is None:
            yield from frames
            return
        for i, frame in enumerate(frames):
            if frame.pts is None:  # the filter needs timestamps to time the fields
                frame.pts = int(i / rate / tb)
            yield from self.deinterlacer.push(frame)
        yield from self.deinterlacer.flush()

    def _planes(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The frame's planes in ``self.layout`` (reformatted only when the memory layout differs)."""
        if frame.format.name not in (self.layout.name, self.layout.name.replace("yuv", "yuvj", 1)):
            if self.rgb_source:
                frame = frame.reformat(format=self.layout.name, dst_colorspace=RGB_SOURCE_COLORSPACE,
                                       dst_color_range=RGB_SOURCE_RANGE)
            else:
                frame = frame.reformat(format=self.layout.name)
        return read_planes(frame, self.layout)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> AvFileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chain(first: list[av.VideoFrame], rest: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
    yield from first
    yield from rest


def _int(value: object) -> int | None:
    return None if value is None else int(value)


def _reason(e: av.error.FFmpegError) -> str:
    return getattr(e, "strerror", None) or str(e)
