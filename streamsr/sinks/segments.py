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
from pathlib import Path

import av

from streamsr.colour import BT601_TV, Colour
from streamsr.encoding import ENCODERS, VideoEncoding
from streamsr.errors import ConfigError, OutputError
from streamsr.sinks.video_stream import CaptureClockStream, pad_to_even
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
    RATE = 25  # what the encoder assumes; timestamps are the capture times

    def __init__(self, folder: Path, settings: SegmentSettings) -> None:
        self.folder = folder
        self.settings = settings
        self.out: av.container.OutputContainer | None = None
        self.encoder: CaptureClockStream | None = None
        self.started = 0.0
        self.files: list[Path] = []

    def _encoding(self) -> VideoEncoding:
        s = self.settings
        return VideoEncoding(s.codec, preset=s.preset, crf=s.crf, tune="zerolatency",
                             gop=max(1, int(s.gop_s * self.RATE)), params=("scenecut=0",))

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
        try:  # tagged with the camera's range and matrix, not the defaults
            self.encoder = CaptureClockStream(self.out, self._encoding(), size, colour, self.RATE)
        except BaseException:
            self.out.close()
            self.out = None
            raise
        self.started = now
        self.files.append(path)
        log.info("recording %s", path)

    def write(self, frame: Frame) -> None:
        planes = pad_to_even(frame.planes)
        size = planes[0].shape[1], planes[0].shape[0]
        now = frame.captured_at or time.monotonic()
        colour = frame.colour or BT601_TV
        if self.encoder is not None and (not self.encoder.fits(size, colour)
                                         or now - self.started >= self.settings.segment_s):
            self.close()
        if self.encoder is None:
            self._open(size, colour, now)
        self.encoder.write(planes, now)

    def close(self) -> None:
        if self.out is None:
            return
        try:
            self.encoder.flush()
        finally:
            self.out.close()
            self.out = self.encoder = None


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
