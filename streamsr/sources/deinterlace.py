"""Interlaced input: detect it and deinterlace with FFmpeg's bwdif before the model.

Analogue cameras behind a DVR give interlaced video: each frame holds two fields captured
1/50 s (or 1/60 s) apart. Upscaled as one picture, the fields blend into combs and the
output claims to be progressive. bwdif rebuilds full frames from fields:

- ``frame`` mode: one output frame per input frame, at the input's timestamps exactly;
- ``field`` mode: one output frame per field, so twice the rate; the first field keeps the
  frame's time, the second sits halfway to the next frame (for the last frame, halfway
  through the previous frame's duration), in a time base half the input's, so every
  timestamp is exact.
"""
from __future__ import annotations

import logging
from fractions import Fraction
from typing import Literal

import av

log = logging.getLogger(__name__)

DeinterlaceMode = Literal["auto", "frame", "field", "off"]
DEINTERLACE_MODES = ("auto", "frame", "field", "off")

# AVFieldOrder: 0 unknown, 1 progressive, 2 tt, 3 bb, 4 tb, 5 bt
_FIELD_ORDERS = {2: "top field first", 3: "bottom field first", 4: "top field first", 5: "bottom field first"}
_PARITY = {2: "tff", 3: "bff", 4: "tff", 5: "bff"}


def field_order_of(stream: av.video.stream.VideoStream) -> int:
    try:
        return int(stream.codec_context.field_order or 0)
    except (AttributeError, TypeError, ValueError):
        return 0


def is_interlaced(stream: av.video.stream.VideoStream, first: av.VideoFrame) -> bool:
    """The stream says its fields are ordered, or its first frame is flagged interlaced."""
    return field_order_of(stream) in _FIELD_ORDERS or bool(first.interlaced_frame)


class Deinterlacer:
    """bwdif through an ``av.filter.Graph``; ``push(frame)`` and ``flush()`` return the frames ready.

    Output frames carry ``pts`` in ``time_base`` (the input's for ``frame`` mode, half of it
    for ``field`` mode).
    """

    def __init__(self, stream: av.video.stream.VideoStream, first: av.VideoFrame, per_field: bool,
                 only_flagged: bool) -> None:
        order = field_order_of(stream)
        self.per_field = per_field
        self.parity = _PARITY.get(order, "auto")
        self.description = _FIELD_ORDERS.get(order, "flagged per frame")
        in_tb = Fraction(stream.time_base) if stream.time_base else Fraction(first.time_base or Fraction(1, 25))
        self.time_base = in_tb / 2 if per_field else in_tb
        self._graph = av.filter.Graph()
        source = self._graph.add_buffer(width=first.width, height=first.height, format=first.format,
                                        time_base=in_tb)
        mode = "send_field" if per_field else "send_frame"
        deint = "interlaced" if only_flagged else "all"
        bwdif = self._graph.add("bwdif", f"mode={mode}:parity={self.parity}:deint={deint}")
        sink = self._graph.add("buffersink")
        source.link_to(bwdif)
        bwdif.link_to(sink)
        self._graph.configure()

    def push(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        self._graph.vpush(frame)
        return self._drain()

    def flush(self) -> list[av.VideoFrame]:
        self._graph.vpush(None)
        return self._drain()

    def _drain(self) -> list[av.VideoFrame]:
        out = []
        while True:
            try:
                frame = self._graph.vpull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return out
            # bwdif works in half the input time base whatever the mode; frame mode goes back to
            # the input's (its pts are even there, so this is exact)
            if frame.pts is not None and frame.time_base is not None:
                pts = frame.pts * Fraction(frame.time_base) / self.time_base
                assert pts.denominator == 1, f"deinterlaced pts {pts} is not exact"
                frame.pts = int(pts)
            frame.time_base = self.time_base
            out.append(frame)
