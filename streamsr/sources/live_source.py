"""Live sources: RTSP/HTTP streams (PyAV), webcams (OpenCV) and files played at their own rate.

A live source never ends on its own: when the stream fails (open or read timeout, a stall,
an error, the server closing), it reconnects with exponential backoff and jitter, forever
unless told otherwise. Each outage is logged when it starts and, with its length, when it
ends. URLs are only ever logged masked (``streamsr.urls.mask_url``).

    source = LiveSource("rtsp://user:pass@127.0.0.1:8554/cam", LiveOptions(), name="gate")
    for frame in source.frames(stop_event):   # Frame planes are (Y, Cb, Cr), 4:2:0
        ...
"""
from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamsr.colour import BT601_TV, Colour, bgr_to_yuv420, colour_from_tags
from streamsr.errors import ConfigError, InputError
from streamsr.sources.av_source import check_readable_file, plane_array
from streamsr.types import Frame
from streamsr.urls import is_stream_url, mask_text, mask_url

log = logging.getLogger(__name__)

LIVE_TIME_BASE = Fraction(1, 90000)  # pts of live frames: capture time on the 90 kHz clock
TRANSPORTS = ("tcp", "udp")
_DEVICE = re.compile(r"^(/dev/video\d+|\d+)$")


class SourceLost(InputError):
    """The stream failed (timeout, stall, error or end); the source will reconnect."""


@dataclass(frozen=True)
class LiveOptions:
    transport: str = "tcp"  # RTSP lower transport: tcp (default, no losses) or udp
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    stall_s: float = 5.0  # no decoded frame for this long is a failure
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 2.0
    backoff_factor: float = 2.0
    jitter: float = 0.25  # +-25 % on every delay, so cameras do not reconnect in lockstep
    max_retries: int | None = None  # None: reconnect forever
    realtime: bool = True  # files: play at their own frame rate
    loop: bool = False  # files: start again at the end (demos, soak runs)

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"transport must be tcp or udp, not {self.transport!r}")
        for name in ("open_timeout_s", "read_timeout_s", "stall_s", "backoff_initial_s", "backoff_max_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before reconnect attempt ``attempt`` (0-based): exponential, capped, jittered."""
        base = min(self.backoff_max_s, self.backoff_initial_s * self.backoff_factor ** attempt)
        r = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + r))


def source_kind(spec: str) -> str:
    """``stream`` (URL), ``device`` (/dev/videoN or an index) or ``file``."""
    if is_stream_url(spec):
        return "stream"
    if _DEVICE.match(spec):
        return "device"
    return "file"


@dataclass
class SourceState:
    """What a source knows about its own health (read by metrics; written by its thread)."""

    connected: bool = False
    outages: int = 0
    reconnects: int = 0  # successful reconnections after an outage
    attempts: int = 0  # failed opens and lost sessions
    up_s: float = 0.0  # total connected time, closed sessions only
    connected_since: float | None = None
    outage_since: float | None = None
    outage_s: float = 0.0  # total length of finished outages
    last_error: str | None = None

    def uptime(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return self.up_s + (now - self.connected_since if self.connected_since is not None else 0.0)


class LiveSource:
    def __init__(self, spec: str, options: LiveOptions | None = None, name: str = "cam0") -> None:
        self.spec = str(spec)
        self.options = options or LiveOptions()
        self.name = name
        self.kind = source_kind(self.spec)
        self.state = SourceState()
        self._epoch = time.monotonic()
        self._index = 0
        self._rng = random.Random()
        if self.kind == "file":
            check_readable_file(Path(self.spec))

    @property
    def display_url(self) -> str:
        return mask_url(self.spec)

    # -- the reconnect loop -----------------------------------------------------------------
    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Frames until ``stop`` is set (or a file ends without ``loop``)."""
        attempt = 0
        while not stop.is_set():
            try:
                for frame in self._session(stop):
                    if not self.state.connected:
                        self._up()
                        attempt = 0
                    yield frame
                    if stop.is_set():
                        self._down(None)
                        return
                if stop.is_set():
                    self._down(None)
                    return
                if self.kind == "file" and not self.options.loop:
                    self._down(None)
                    return
                if self.kind == "file":
                    self._down(None)
                    continue  # loop a file: no outage, no delay
                raise SourceLost("the stream ended")
            except (InputError, av.error.FFmpegError, OSError) as e:
                self._down(mask_text(str(e)) or type(e).__name__)
            if self.options.max_retries is not None and attempt >= self.options.max_retries:
                raise InputError(f"{self.name} ({self.display_url}): gave up after {attempt + 1} attempts: "
                                 f"{self.state.last_error}")
            delay = self.options.backoff(attempt, self._rng)
            attempt += 1
            log.debug("%s: reconnect attempt %d in %.2f s", self.name, attempt, delay)
            stop.wait(delay)

    def _up(self) -> None:
        now = time.monotonic()
        s = self.state
        if s.outage_since is not None:
            length = now - s.outage_since
            s.outage_s += length
            s.reconnects += 1
            log.warning("%s: stream back after an outage of %.1f s (%s)", self.name, length, self.display_url)
            s.outage_since = None
        s.connected, s.connected_since = True, now

    def _down(self, reason: str | None) -> None:
        now = time.monotonic()
        s = self.state
        if s.connected_since is not None:
            s.up_s += now - s.connected_since
        s.connected, s.connected_since = False, None
        if reason is None:
            return
        s.attempts += 1
        s.last_error = reason
        if s.outage_since is None:
            s.outage_since = now
            s.outages += 1
            log.warning("%s: stream lost (%s): %s; reconnecting", self.name, self.display_url, reason)
        else:
            log.debug("%s: still down: %s", self.name, reason)

    def outage_report(self) -> float | None:
        """Length of the outage in progress, if any (logged at shutdown)."""
        return None if self.state.outage_since is None else time.monotonic() - self.state.outage_since

    # -- one connection ---------------------------------------------------------------------
    def _session(self, stop: threading.Event) -> Iterator[Frame]:
        if self.kind == "device":
            yield from self._opencv_session(stop, self.spec)
        else:
            yield from self._av_session(stop)

    def _frame(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], captured_at: float, colour: Colour) -> Frame:
        frame = Frame(
            index=self._index, planes=planes, pts=int(round((captured_at - self._epoch) / LIVE_TIME_BASE)),
            time_base=LIVE_TIME_BASE, name=self.name, captured_at=captured_at, colour=colour,
        )
        self._index += 1
        return frame

    def _av_options(self) -> dict[str, str]:
        o = self.options
        options = {"flags": "low_delay", "probesize": "500000", "analyzeduration": "1000000"}
        if self.spec.lower().startswith(("rtsp://", "rtsps://")):
            # Do not keep the packets read while probing: start with the newest. Not for HTTP,
            # where it discards everything probed (a short stream then yields no frame at all).
            options["fflags"] = "nobuffer"
            options["rtsp_transport"] = o.transport
            options["timeout"] = str(int(o.read_timeout_s * 1e6))  # socket I/O timeout, microseconds
        elif self.spec.lower().startswith(("http://", "https://")):
            options["rw_timeout"] = str(int(o.read_timeout_s * 1e6))
            options["reconnect"] = "0"  # we reconnect ourselves, with backoff
        return options

    def _av_session(self, stop: threading.Event) -> Iterator[Frame]:
        o = self.options
        options = self._av_options() if self.kind == "stream" else {}
        try:
            container = av.open(self.spec, mode="r", options=options, timeout=(o.open_timeout_s, o.read_timeout_s))
        except av.error.FFmpegError as e:
            raise SourceLost(f"cannot open: {_reason(e)}") from None
        try:
            if not container.streams.video:
                raise SourceLost("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO" if self.kind == "file" else "SLICE"
            pace = _Pacer() if self.kind == "file" and o.realtime else None
            last = time.monotonic()
            for packet in container.demux():
                now = time.monotonic()
                if stop.is_set():
                    return
                if packet.stream.index != stream.index:
                    if now - last > o.stall_s:
                        raise SourceLost(f"stalled: no video frame for {now - last:.1f} s")
                    continue
                for decoded in packet.decode():
                    if pace is not None and decoded.time is not None:
                        pace.wait(decoded.time, stop)
                    captured = time.monotonic()
                    last = captured
                    planes, colour = decoded_planes(decoded)
                    yield self._frame(planes, captured, colour)
                if time.monotonic() - last > o.stall_s:
                    raise SourceLost(f"stalled: no video frame for {time.monotonic() - last:.1f} s")
        except av.error.FFmpegError as e:
            raise SourceLost(f"read failed: {_reason(e)}") from None
        finally:
            container.close()

    def _opencv_session(self, stop: threading.Event, target: str | int) -> Iterator[Frame]:
        import cv2

        o = self.options
        device: str | int = int(target) if isinstance(target, str) and target.isdigit() else target
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(o.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(o.read_timeout_s * 1000)]
        api = cv2.CAP_V4L2 if self.kind == "device" else cv2.CAP_ANY
        cap = cv2.VideoCapture(device, api, params)
        try:
            if not cap.isOpened():
                raise SourceLost(f"cannot open {target} through OpenCV")
            last = time.monotonic()
            while not stop.is_set():
                ok, bgr = cap.read()
                now = time.monotonic()
                if not ok or bgr is None:
                    if now - last > o.stall_s or self.kind != "device":
                        raise SourceLost("no frame from the device" if self.kind == "device" else "ended")
                    continue
                last = now
                yield self._frame(bgr_to_yuv420(bgr, BT601_TV), now, BT601_TV)
        finally:
            cap.release()


def decoded_planes(decoded: av.VideoFrame) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], Colour]:
    """(Y, Cb, Cr) 4:2:0 planes of a decoded frame and their colour (matrix and range).

    Full-range video (``yuvj*`` formats, or a JPEG range tag) stays full range: a format other
    than 4:2:0 is converted to 4:2:0 at its own range, never squeezed to limited range.
    """
    fmt = decoded.format.name
    colour = colour_from_tags(_enum(decoded.colorspace), _enum(decoded.color_range), decoded.width, decoded.height,
                              full_range_format=fmt.startswith("yuvj"),
                              primaries=_enum(getattr(decoded, "color_primaries", None)),
                              transfer=_enum(getattr(decoded, "color_trc", None)))
    if fmt not in ("yuv420p", "yuvj420p"):
        rng = "JPEG" if colour.full_range else "MPEG"
        decoded = decoded.reformat(format="yuv420p", src_color_range=rng, dst_color_range=rng)
    return (plane_array(decoded.planes[0]), plane_array(decoded.planes[1]), plane_array(decoded.planes[2])), colour


def _enum(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


class _Pacer:
    """Sleeps so that frames come out at their presentation times (``--realtime`` files)."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.first: float = 0.0

    def wait(self, t: float, stop: threading.Event) -> None:
        now = time.monotonic()
        if self.t0 is None:
            self.t0, self.first = now, t
            return
        delay = self.t0 + (t - self.first) - now
        if delay > 0:
            stop.wait(delay)


def _reason(e: av.error.FFmpegError) -> str:
    return mask_text(getattr(e, "strerror", None) or type(e).__name__)
