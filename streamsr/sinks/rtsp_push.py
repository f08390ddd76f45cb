"""Re-stream the enhanced video to an RTSP server (ANNOUNCE/RECORD), H.264 with low latency.

``url`` may hold ``{camera}``, replaced by each camera's name, so one output serves many
cameras. A failed connection is retried with backoff on later frames; the frames in between
are not sent (live: they would be stale by then). The URL is only ever logged masked.
"""
from __future__ import annotations

import logging
import time

import av

from streamsr.colour import BT601_TV, Colour
from streamsr.encoding import VideoEncoding
from streamsr.errors import ConfigError, OutputError
from streamsr.sinks.video_stream import CaptureClockStream, pad_to_even
from streamsr.types import Frame
from streamsr.urls import mask_text, mask_url

log = logging.getLogger(__name__)


class _Push:
    def __init__(self, url: str, transport: str, rate: int) -> None:
        self.url = url
        self.transport = transport
        self.rate = rate
        self.out = None
        self.encoder: CaptureClockStream | None = None
        self.retry_at = 0.0
        self.failures = 0

    def open(self, size: tuple[int, int], colour: Colour) -> None:
        try:
            out = av.open(self.url, mode="w", format="rtsp",
                          options={"rtsp_transport": self.transport}, timeout=(5.0, 5.0))
        except av.error.FFmpegError as e:
            raise OutputError(f"cannot push to {mask_url(self.url)}: {mask_text(e.strerror or str(type(e).__name__))}") from None
        encoding = VideoEncoding("h264", preset="ultrafast", tune="zerolatency", gop=self.rate,
                                 params=("repeat-headers=1",))
        # the camera's range and matrix go into the H.264 VUI
        self.out, self.encoder = out, CaptureClockStream(out, encoding, size, colour, self.rate)

    def write(self, frame: Frame) -> None:
        planes = pad_to_even(frame.planes)
        size = planes[0].shape[1], planes[0].shape[0]
        now = time.monotonic()
        colour = frame.colour or BT601_TV
        if self.encoder is not None and not self.encoder.fits(size, colour):
            self.close()
        if self.encoder is None:
            if now < self.retry_at:
                return
            try:
                self.open(size, colour)
            except OutputError:
                self.failures += 1
                self.retry_at = now + min(30.0, 0.5 * 2 ** min(self.failures, 6))
                raise
            self.failures = 0
        try:
            self.encoder.write(planes, frame.captured_at or now)
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
        self.out = self.encoder = None

    def close(self) -> None:
        if self.encoder is None:
            return
        try:
            self.encoder.flush()
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
