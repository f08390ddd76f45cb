"""Recording to segmented files (e.g. hourly), one folder per camera.

Segments are MPEG-TS by default: a TS file needs no index or trailer, so every segment written
so far stays playable even when the process is killed (SIGKILL, power loss of the process);
the segment in progress loses at most its last unflushed packets. ``fmp4`` writes fragmented
MP4 (``frag_keyframe+empty_moov``, a fragment at least every 0.5 s), so a kill loses at most
the last fragment. Packets are flushed as they are written.

Timestamps are the frames' capture times (90 kHz), so a recording with drops or an outage
keeps real time. A keyframe starts every segment (the encoder's GOP is ``gop_s``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from streamsr.colour import BT601_TV, Colour
from streamsr.errors import ConfigError, OutputError
from streamsr.sinks.av_sink import ENCODERS, fill_frame, pad_to_even
from streamsr.types import Frame

log = logging.getLogger(__name__)

SEGMENT_FORMATS = {"ts": ("mpegts", ".ts", {}), "fmp4": ("mp4", ".mp4", {"movflags": "frag_keyframe+empty_moov+default_base_moof",
                                              "frag_duration": "500000"})}


@dataclass(frozen=True)
class SegmentSettings:
    segment_s: float = 3600.0
    format: str = "ts"  # ts | fmp4
    codec: str = "h264"
    preset: str = "veryfast"
    crf: int = 23
    gop_s: float = 2.0
    name: str = "%Y%m%d-%H%M%S"  # strftime pattern of each segment's start (local time)

    def __post_init__(self) -> None:
        if self.format not in SEGMENT_FORMATS:
            raise ConfigError(f"segment format must be one of {', '.join(SEGMENT_FORMATS)}, not {self.format!r}")
        if self.segment_s <= 0:
            raise ConfigError(f"segment length must be positive, not {self.segment_s}")
        if self.codec not in ENCODERS:
            raise ConfigError(f"unknown codec {self.codec!r}")


class _CameraRecorder:
    TIME_BASE = Fraction(1, 90000)

    def __init__(self, folder: Path, settings: SegmentSettings) -> None:
        self.folder = folder
        self.settings = settings
        self.out: av.container.OutputContainer | None = None
        self.stream = None
        self.size: tuple[int, int] | None = None
        self.colour: Colour | None = None
        self.started = 0.0
        self.first_capture: float | None = None
        self.last_pts = -1
        self.files: list[Path] = []

    def _open(self, size: tuple[int, int], colour: Colour, now: float) -> None:
        fmt, suffix, options = SEGMENT_FORMATS[self.settings.format]
        name = time.strftime(self.settings.name, time.localtime()) + suffix
        path = self.folder / name
        n = 1
        while path.exists():
            path = self.folder / f"{Path(name).stem}-{n}{suffix}"
            n += 1
        try:
            self.out = av.open(str(path), mode="w", format=fmt, options={**options, "flush_packets": "1"})
        except (av.error.FFmpegError, OSError) as e:
            raise OutputError(f"cannot write segment {path}: {e}") from None
        stream = self.out.add_stream(ENCODERS[self.settings.codec], rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.TIME_BASE
        stream.codec_context.time_base = self.TIME_BASE
        for attr, value in colour.encoder_tags().items():  # the camera's range and matrix, not the defaults
            setattr(stream.codec_context, attr, value)
        stream.codec_context.options = {"preset": self.settings.preset, "crf": str(self.settings.crf),
                                        "tune": "zerolatency",
                                        "x264-params": f"keyint={max(1, int(self.settings.gop_s * 25))}:scenecut=0"}
        self.stream = stream
        self.size = size
        self.colour = colour
        self.started = now
        self.files.append(path)
        log.info("recording %s", path)

    def write(self, frame: Frame) -> None:
        planes = pad_to_even(frame.planes)
        size = planes[0].shape[1], planes[0].shape[0]
        now = frame.captured_at or time.monotonic()
        colour = frame.colour or BT601_TV
        if self.out is not None and (size != self.size or colour != self.colour
                                     or now - self.started >= self.settings.segment_s):
            self.close()
        if self.out is None:
            self._open(size, colour, now)
            self.first_capture = now
            self.last_pts = -1
        pts = int(round((now - self.first_capture) / self.TIME_BASE))
        pts = max(pts, self.last_pts + 1)
        self.last_pts = pts
        av_frame = fill_frame(planes)
        av_frame.pts = pts
        av_frame.time_base = self.TIME_BASE
        for packet in self.stream.encode(av_frame):
            self.out.mux(packet)

    def close(self) -> None:
        if self.out is None:
            return
        try:
            for packet in self.stream.encode(None):
                self.out.mux(packet)
        finally:
            self.out.close()
            self.out = None


class SegmentRecorder:
    """A LiveOutput: ``folder/<camera>/<start time>.ts``, a new file every ``segment_s``
    and whenever the frame size or colour (range, matrix) changes; each file is tagged with the
    frames' colour."""

    label = "record"

    def __init__(self, folder: str | Path, settings: SegmentSettings | None = None) -> None:
        self.folder = Path(folder)
        self.settings = settings or SegmentSettings()
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"recording folder is a file: {self.folder}")
        if not self.folder.parent.exists():
            raise OutputError(f"recording folder's parent does not exist: {self.folder.parent}")
        self._cameras: dict[str, _CameraRecorder] = {}

    def write(self, camera: str, frame: Frame) -> None:
        rec = self._cameras.get(camera)
        if rec is None:
            folder = self.folder / camera
            folder.mkdir(parents=True, exist_ok=True)
            rec = self._cameras[camera] = _CameraRecorder(folder, self.settings)
        rec.write(frame)

    def files(self, camera: str) -> list[Path]:
        rec = self._cameras.get(camera)
        return list(rec.files) if rec else []

    def close(self) -> None:
        for rec in self._cameras.values():
            try:
                rec.close()
            except Exception as e:  # noqa: BLE001 - close the others
                log.warning("closing a segment failed: %s", e)
