"""Re-stream the enhanced video to an RTSP server (ANNOUNCE/RECORD), H.264 with low latency.

``url`` may hold ``{camera}``, replaced by each camera's name, so one output serves many
cameras. A failed connection is retried with backoff on later frames; the frames in between
are not sent (live: they would be stale by then). The URL is only ever logged masked.
"""
from __future__ import annotations

import logging
import time
from fractions import Fraction

import av

from streamsr.colour import BT601_TV, Colour
from streamsr.errors import ConfigError, OutputError
from streamsr.sinks.av_sink import fill_frame, pad_to_even
from streamsr.types import Frame
from streamsr.urls import mask_text, mask_url

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)


class _Push:
    def __init__(self, url: str, transport: str, rate: int) -> None:
        self.url = url
        self.transport = transport
        self.rate = rate
        self.out = None
        self.stream = None
        self.size: tuple[int, int] | None = None
        self.colour: Colour | None = None
        self.first: float | None = None
        self.last_pts = -1
        self.retry_at = 0.0
        self.failures = 0

    def open(self, size: tuple[int, int], colour: Colour) -> None:
        try:
            out = av.open(self.url, mode="w", format="rtsp",
                          options={"rtsp_transport": self.transport}, timeout=(5.0, 5.0))
        except av.error.FFmpegError as e:
            raise OutputError(f"cannot push to {mask_url(self.url)}: {mask_text(e.strerror or str(type(e).__name__))}") from None
        stream = out.add_stream("libx264", rate=self.rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        for attr, value in colour.encoder_tags().items():  # the camera's range and matrix, in the H.264 VUI
            setattr(stream.codec_context, attr, value)
        stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency",
                                        "x264-params": f"keyint={self.rate}:repeat-headers=1"}
        self.out, self.stream, self.size, self.colour = out, stream, size, colour
        self.first, self.last_pts = None, -1

    def write(self, frame: Frame) -> None:
        planes = pad_to_even(frame.planes)
        size = planes[0].shape[1], planes[0].shape[0]
        now = time.monotonic()
        colour = frame.colour or BT601_TV
        if self.out is not None and (size != self.size or colour != self.colour):
            self.close()
        if self.out is None:
            if now < self.retry_at:
                return
            try:
                self.open(size, colour)
            except OutputError:
                self.failures += 1
                self.retry_at = now + min(30.0, 0.5 * 2 ** min(self.failures, 6))
                raise
            self.failures = 0
        captured = frame.captured_at or now
        if self.first is None:
            self.first = captured
        pts = max(int(round((captured - self.first) / TIME_BASE)), self.last_pts + 1)
        self.last_pts = pts
        av_frame = fill_frame(planes)
        av_frame.pts, av_frame.time_base = pts, TIME_BASE
        try:
            for packet in self.stream.encode(av_frame):
                self.out.mux(packet)
        except (av.error.FFmpegError, OSError) as e:
            self._drop()
            self.retry_at = now + 1.0
            raise OutputError(f"push to {mask_url(self.url)} failed: {mask_text(str(getattr(e, 'strerror', None) or e))}") from None

    def _drop(self) -> None:
        try:
            if self.out is not None:
                self.out.close()
        except Exception:  # noqa: BLE001 - the connection is gone anyway
            pass
        self.out = self.stream = None

    def close(self) -> None:
        if self.out is None:
            return
        try:
            for packet in self.stream.encode(None):
                self.out.mux(packet)
        except (av.error.FFmpegError, OSError):
            pass
        self._drop()


class RtspPush:
    """A LiveOutput that publishes each camera to ``url`` (``{camera}`` expands to its name)."""

    label = "push"

    def __init__(self, url: str, cameras: list[str], transport: str = "tcp", rate: int = 25) -> None:
        if not url.lower().startswith(("rtsp://", "rtsps://")):
            raise ConfigError(f"an RTSP push needs an rtsp:// URL, not {mask_url(url)}")
        if len(cameras) > 1 and "{camera}" not in url:
            raise ConfigError("several cameras pushing to one URL: put {camera} in it, e.g. rtsp://host/{camera}-sr")
        self.url = url
        self._pushes = {c: _Push(url.replace("{camera}", c), transport, rate) for c in cameras}

    def write(self, camera: str, frame: Frame) -> None:
        self._pushes[camera].write(frame)

    def close(self) -> None:
        for push in self._pushes.values():
            push.close()
