"""One frame size per output: frames whose size changes mid-stream are fitted to the first one.

A video file has one frame size, and a camera that changes its resolution mid-recording (or
two recordings joined together) gives frames of another. The rule: every frame is written at
the size of the first frame. A frame of another size is scaled to fit inside it with its
aspect ratio kept (area filter when shrinking, bicubic when enlarging) and centred on black,
so nothing is cropped, nothing is stretched and no frame is dropped. The first change is
logged as a warning, and ``changes`` records each one for the end-of-run report.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np

from streamsr.types import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SizeChange:
    index: int  # first frame of the new size
    size: tuple[int, int]  # (width, height) it had


class FirstSize:
    """Iterates ``frames`` with every frame at the first frame's size (see the module notes)."""

    def __init__(self, frames: Iterable[Frame], full_range: bool = False) -> None:
        self.frames = frames
        self.full_range = full_range
        self.changes: list[SizeChange] = []
        self.fitted = 0  # frames that were scaled

    def __iter__(self) -> Iterator[Frame]:
        shapes: list[tuple[int, ...]] | None = None
        current: tuple[int, int] | None = None
        for frame in self.frames:
            if shapes is None:
                shapes = [p.shape for p in frame.planes]
                current = frame.size
            if frame.size != current:
                current = frame.size
                self._changed(frame, shapes)
            if [p.shape for p in frame.planes] != shapes:
                full_range = frame.full_range or self.full_range
                frame = replace(frame, planes=fit_planes(frame.planes, shapes, full_range, frame.bit_depth))
                self.fitted += 1
            yield frame

    def _changed(self, frame: Frame, shapes: list[tuple[int, ...]]) -> None:
        self.changes.append(SizeChange(frame.index, frame.size))
        first = f"{shapes[0][1]}x{shapes[0][0]}"
        if len(self.changes) == 1:
            log.warning("the frame size changes at frame %d from %s to %dx%d: such frames are scaled to fit %s, "
                        "aspect ratio kept, on black", frame.index, first, *frame.size, first)


def fit_planes(planes: tuple[np.ndarray, ...], shapes: list[tuple[int, ...]], full_range: bool, bits: int = 8) -> tuple:
    """Planes scaled to fit inside ``shapes`` (one per plane), aspect kept, centred on black."""
    (h0, w0), (h, w) = shapes[0][:2], planes[0].shape[:2]
    ratio = min(w0 / w, h0 / h)
    fw, fh = max(1, round(w * ratio)), max(1, round(h * ratio))
    x, y = (w0 - fw) // 2, (h0 - fh) // 2
    out = []
    for i, (plane, shape) in enumerate(zip(planes, shapes, strict=True)):
        sy, sx = shape[0] / h0, shape[1] / w0  # this plane's subsampling
        canvas = np.full(shape, _black(i, full_range, bits), plane.dtype)
        pw, ph = max(1, round(fw * sx)), max(1, round(fh * sy))
        px, py = min(round(x * sx), shape[1] - pw), min(round(y * sy), shape[0] - ph)
        filter_ = cv2.INTER_AREA if pw < plane.shape[1] else cv2.INTER_CUBIC
        canvas[py:py + ph, px:px + pw] = cv2.resize(plane, (pw, ph), interpolation=filter_)
        out.append(canvas)
    return tuple(out)


def _black(plane: int, full_range: bool, bits: int) -> int:
    """Black at ``bits`` per sample: Y limited 16 or full 0, Cb/Cr neutral 128, in 8-bit code values
    shifted up (10-bit limited black is 64: code values scale by 2^(bits-8), as in BT.2100)."""
    value = (0 if full_range else 16) if plane == 0 else 128
    return value << (bits - 8)
