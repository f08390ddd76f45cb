"""An H.264/HEVC video stream in an output container: set up, fed, flushed.

``add_video_stream`` is the one place a sink adds an encoded video stream (codec, rate, time
base, size, pixel format, encoder options, colour tags); the file sink, the recordings, the
RTSP push, generated clips and the benchmark's peer loop all go through it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from streamsr.colour import Colour
from streamsr.encoding import VideoEncoding, configure_encoder
from streamsr.pixfmt import YUV420P, frame_from_planes

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def add_video_stream(container: av.container.OutputContainer, encoding: VideoEncoding, size: tuple[int, int], *,
                     rate: Fraction | int | None = None, time_base: Fraction | None = None,
                     pix_fmt: str = "yuv420p", colour_tags: Mapping[str, int | None] | None = None,
                     codec_tag: str | None = None) -> av.video.stream.VideoStream:
    """A new video stream of ``size`` (width, height) in ``container``, its encoder set up.

    ``time_base`` is the stream's and the encoder's (None: what ``rate`` implies); the other
    arguments are those of encoding.configure_encoder.
    """
    stream = container.add_stream(encoding.encoder, rate=rate)
    if time_base is not None:
        stream.time_base = time_base
    configure_encoder(stream.codec_context, encoding, size, pix_fmt=pix_fmt, time_base=time_base,
                      colour_tags=colour_tags, codec_tag=codec_tag)
    return stream


def encode(container: av.container.OutputContainer, stream: av.video.stream.VideoStream,
           frame: av.VideoFrame | None) -> list[av.Packet]:
    """Encode ``frame`` (None flushes the encoder) and mux what comes out; the packets."""
    packets = stream.encode(frame)
    for packet in packets:
        container.mux(packet)
    return packets


def write_clip(path: Path, planes_iter: Iterable[Planes], rate: Fraction = Fraction(25), lossless: bool = True) -> int:
    """Encode 8-bit 4:2:0 (Y, Cb, Cr) planes into an H.264 file, untagged; lossless (QP 0) by
    default, else CRF 20. Returns the frame count."""
    encoding = VideoEncoding("h264", preset="ultrafast", qp=0) if lossless else VideoEncoding("h264", crf=20)
    count = 0
    with av.open(str(path), mode="w") as out:
        stream = None
        for planes in planes_iter:
            if stream is None:
                height, width = planes[0].shape
                stream = add_video_stream(out, encoding, (width, height), rate=rate)
            frame = frame_from_planes(planes, YUV420P)
            frame.pts = count
            frame.time_base = 1 / rate
            encode(out, stream, frame)
            count += 1
        if stream is not None:
            encode(out, stream, None)
    return count


def pad_to_even(planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4:2:0 encoders need even sizes: repeat the last row/column of Y when it is odd.

    The chroma planes of an odd size already cover the padded one (ceil(5/2) == 6/2).
    """
    y = planes[0]
    h, w = y.shape
    if (h % 2 == 0 and w % 2 == 0) or planes[1].shape == y.shape:  # even, or 4:4:4
        return planes
    y = np.pad(y, ((0, h % 2), (0, w % 2)), mode="edge")
    return y, planes[1], planes[2]


class CaptureClockStream:
    """An 8-bit 4:2:0 stream whose timestamps are the frames' capture times (90 kHz), for the
    live outputs: a recording or a re-stream with drops or an outage keeps real time.

    Tagged with the frames' colour; a caller opens a new one when the size or colour changes
    (``fits``).
    """

    TIME_BASE = Fraction(1, 90000)

    def __init__(self, container: Any, encoding: VideoEncoding, size: tuple[int, int], colour: Colour,
                 rate: int) -> None:
        self.container = container
        self.stream = add_video_stream(container, encoding, size, rate=rate, time_base=self.TIME_BASE,
                                       colour_tags=colour.encoder_tags())
        self.size = size
        self.colour = colour
        self.first: float | None = None  # capture time of the first frame: pts 0
        self.last_pts = -1

    def fits(self, size: tuple[int, int], colour: Colour) -> bool:
        return size == self.size and colour == self.colour

    def write(self, planes: Planes, captured: float) -> None:
        """Encode planes captured at ``captured`` (time.monotonic()); pts never go backwards."""
        if self.first is None:
            self.first = captured
        pts = max(int(round((captured - self.first) / self.TIME_BASE)), self.last_pts + 1)
        self.last_pts = pts
        frame = frame_from_planes(planes, YUV420P)
        frame.pts, frame.time_base = pts, self.TIME_BASE
        encode(self.container, self.stream, frame)

    def flush(self) -> None:
        encode(self.container, self.stream, None)
