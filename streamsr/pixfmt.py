"""Pixel layouts: bit depth and chroma subsampling of the planes that move through a run.

Every decoded format maps to a *planar* layout of the same depth and chroma (nv12 is
yuv420p, p010le is yuv420p10le, yuyv422 is yuv422p, yuvj420p is yuv420p with a full-range
flag). Planes of 8-bit layouts are ``uint8``; deeper ones are ``uint16`` holding the code
values (0..1023 for 10 bits), never shifted. The output keeps the input's layout unless the
encoder cannot write it; then :func:`nearest_supported` picks the closest one it can.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from streamsr.colour import chroma_factor

if TYPE_CHECKING:
    import av

# PyAV is imported where a function needs it, not here: training imports this module (through
# the CCTV degradation) and runs on machines where only the codec clips need PyAV.

# 4:x:y name for (log2 chroma width, log2 chroma height)
_CHROMA_NAMES = {(0, 0): "444", (1, 0): "422", (1, 1): "420", (0, 1): "440", (2, 0): "411", (2, 2): "410"}
_DEPTH_SUFFIX = {8: "", 9: "p9le", 10: "p10le", 12: "p12le", 14: "p14le", 16: "p16le"}


@dataclass(frozen=True)
class PixelLayout:
    """A planar YUV (or gray) layout: ``bits`` per sample, chroma subsampled by 2**log2 per axis."""

    bits: int = 8
    log2_chroma_w: int = 1
    log2_chroma_h: int = 1
    gray: bool = False

    @property
    def name(self) -> str:
        """The FFmpeg pixel format name (``yuv422p10le``, ``gray``)."""
        if self.gray:
            return "gray" if self.bits == 8 else f"gray{self.bits}le"
        chroma = _CHROMA_NAMES[(self.log2_chroma_w, self.log2_chroma_h)]
        suffix = _DEPTH_SUFFIX[self.bits]
        return f"yuv{chroma}p{suffix[1:]}" if suffix else f"yuv{chroma}p"

    @property
    def dtype(self) -> type:
        return np.uint8 if self.bits <= 8 else np.uint16

    @property
    def peak(self) -> int:
        """The largest code value."""
        return (1 << self.bits) - 1

    @property
    def chroma_label(self) -> str:
        return "4:0:0" if self.gray else ":".join(_CHROMA_NAMES[(self.log2_chroma_w, self.log2_chroma_h)])

    def describe(self) -> str:
        return f"{self.name} ({self.bits}-bit {self.chroma_label})"

    def chroma_shape(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of a chroma plane for a luma plane of this size (odd sizes round up)."""
        return -(-height >> self.log2_chroma_h), -(-width >> self.log2_chroma_w)

    def size_multiple(self) -> tuple[int, int]:
        """(width, height) that the luma size must be a multiple of for an encoder."""
        if self.gray:
            return 1, 1
        return 1 << self.log2_chroma_w, 1 << self.log2_chroma_h


YUV420P = PixelLayout()


def _log2(ratio: float) -> int:
    return {1: 0, 2: 1, 4: 2}.get(round(ratio), 1)


def layout_of(fmt: av.VideoFormat | str) -> PixelLayout | None:
    """The planar layout with ``fmt``'s depth and chroma; None for RGB, palette or Bayer formats."""
    import av

    if isinstance(fmt, str):
        fmt = av.VideoFormat(fmt)
    if fmt.is_rgb or fmt.has_palette or fmt.is_bayer or not fmt.components:
        return None
    bits = max(c.bits for c in fmt.components[:3])
    bits = min((b for b in _DEPTH_SUFFIX if b >= bits), default=16)
    if len(fmt.components) < 3:
        return PixelLayout(bits=bits, gray=True)
    probe = 64
    log2_w = _log2(probe / fmt.chroma_width(probe))
    log2_h = _log2(probe / fmt.chroma_height(probe))
    if (log2_w, log2_h) not in _CHROMA_NAMES:
        log2_w = log2_h = 0
    return PixelLayout(bits=bits, log2_chroma_w=log2_w, log2_chroma_h=log2_h)


def is_full_range_format(name: str) -> bool:
    """The deprecated JPEG formats (yuvj420p...) imply full range whatever the stream says."""
    return name.startswith("yuvj")


def exists(layout: PixelLayout) -> bool:
    import av

    try:
        av.VideoFormat(layout.name)
    except ValueError:
        return False
    return True


def working_layout(fmt: av.VideoFormat | str) -> PixelLayout:
    """The planar layout a decoded frame of ``fmt`` is read into (RGB sources become 4:4:4)."""
    import av

    if isinstance(fmt, str):
        fmt = av.VideoFormat(fmt)
    layout = layout_of(fmt)
    if layout is None:  # RGB, palette, Bayer: YUV 4:4:4 of the same depth (colour.RGB_SOURCE_MATRIX)
        bits = max((c.bits for c in fmt.components), default=8)
        layout = PixelLayout(bits=min((b for b in _DEPTH_SUFFIX if b >= bits), default=16),
                             log2_chroma_w=0, log2_chroma_h=0)
    if not exists(layout):  # e.g. 10-bit 4:1:1: keep the depth, widen the chroma
        layout = PixelLayout(bits=layout.bits, log2_chroma_w=0, log2_chroma_h=0, gray=layout.gray)
    return layout


def _loss(want: PixelLayout, have: PixelLayout) -> tuple[int, int, int]:
    """(loses anything, how much is lost, how much is added) when ``want`` is written as ``have``."""
    lost_bits = max(0, want.bits - have.bits)
    chroma_w = 0 if want.gray else max(0, have.log2_chroma_w - want.log2_chroma_w)
    chroma_h = 0 if want.gray else max(0, have.log2_chroma_h - want.log2_chroma_h)
    lost = lost_bits + 4 * (chroma_w + chroma_h) + (8 if have.gray and not want.gray else 0)
    added = max(0, have.bits - want.bits) + (0 if have.gray or want.gray else
                                             max(0, want.log2_chroma_w - have.log2_chroma_w)
                                             + max(0, want.log2_chroma_h - have.log2_chroma_h))
    added += 1 if want.gray and not have.gray else 0
    return (1 if lost else 0), lost, added


def nearest_supported(want: PixelLayout, supported: Iterable[str]) -> PixelLayout:
    """The layout among ``supported`` pixel formats that loses the least of ``want``.

    First one that loses nothing (the smallest such), else the one that loses least: a
    10-bit 4:2:2 request on an 8-bit-only encoder becomes 8-bit 4:2:2, not 10-bit 4:2:0.
    """
    candidates = []
    for name in supported:
        layout = layout_of(name)
        if layout is not None and layout.name == name:  # planar formats only; yuvj* are yuv* + range
            candidates.append(layout)
    if not candidates:
        return want
    if want in candidates:
        return want
    return min(candidates, key=lambda have: _loss(want, have))


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def _plane_view(plane: av.video.plane.VideoPlane, dtype: type) -> np.ndarray:
    """A writable (height, width) view of one plane, without the line padding."""
    item = np.dtype(dtype).itemsize
    raw = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // item)
    return raw[:, : plane.width]


def neutral_chroma(shape: tuple[int, int], layout: PixelLayout) -> np.ndarray:
    return np.full(shape, 1 << (layout.bits - 1), dtype=layout.dtype)


def read_planes(frame: av.VideoFrame, layout: PixelLayout) -> Planes:
    """Copies of (Y, Cb, Cr) of a frame already in ``layout``'s memory layout.

    Gray layouts get neutral chroma planes (4:2:0-sized) so that every later stage sees three
    planes; the sink writes only Y back when the output is gray.
    """
    y = _plane_view(frame.planes[0], layout.dtype).copy()
    if layout.gray:
        shape = -(-y.shape[0] // 2), -(-y.shape[1] // 2)
        return y, neutral_chroma(shape, layout), neutral_chroma(shape, layout)
    return y, _plane_view(frame.planes[1], layout.dtype).copy(), _plane_view(frame.planes[2], layout.dtype).copy()


def frame_from_planes(planes: Planes, layout: PixelLayout) -> av.VideoFrame:
    """A VideoFrame of ``layout`` from (Y, Cb, Cr); each plane must cover the frame's plane."""
    import av

    y = planes[0]
    frame = av.VideoFrame(y.shape[1], y.shape[0], layout.name)
    for plane, data in zip(frame.planes, planes):
        view = _plane_view(plane, layout.dtype)
        view[:] = data[: view.shape[0], : view.shape[1]]
    return frame


def pad_planes(planes: Planes, layout: PixelLayout, multiple: tuple[int, int] | None = None) -> Planes:
    """Repeat the last row/column so the luma size is a multiple of ``multiple`` (w, h;
    default what ``layout`` needs: 2 for subsampled chroma) and each chroma plane of
    ``layout`` covers its padded share."""
    y = planes[0]
    mult_w, mult_h = multiple or layout.size_multiple()
    h, w = y.shape
    ph, pw = -h % mult_h, -w % mult_w
    if ph or pw:
        y = np.pad(y, ((0, ph), (0, pw)), mode="edge")
    if layout.gray:
        return y, planes[1], planes[2]
    ch, cw = layout.chroma_shape(*y.shape)
    chroma = []
    for c in planes[1:]:
        if c.shape[0] < ch or c.shape[1] < cw:
            c = np.pad(c, ((0, max(0, ch - c.shape[0])), (0, max(0, cw - c.shape[1]))), mode="edge")
        chroma.append(c)
    return y, chroma[0], chroma[1]


def frame_layout(planes: Planes, bit_depth: int = 8) -> PixelLayout:
    """The layout that (Y, Cb, Cr) planes are in, read from their shapes."""
    y, c = planes[0], planes[1]
    log2 = {1: 0, 2: 1, 4: 2}
    bits = bit_depth if y.dtype != np.uint8 else 8
    return PixelLayout(bits=bits, log2_chroma_w=log2[chroma_factor(c.shape[1], y.shape[1])],
                       log2_chroma_h=log2[chroma_factor(c.shape[0], y.shape[0])])
