"""What an output video inherits from its input: timing, colour tags, layout and rotation.

Colour: the matrix, range, primaries and transfer (HLG, PQ included) are copied. An input
that does not say its matrix is decoded by players with a guess made from its *size*
(BT.601 below 1280x720, BT.709 above, as FFmpeg, mpv and browsers do). Upscaling can move a
clip across that line (640x480 becomes 1280x960), so an untagged output would be shown with
the other matrix and wrong colours. The output is therefore tagged with what the input was
shown as.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from streamsr.colour import RGB_SOURCE_COLORSPACE, RGB_SOURCE_RANGE
from streamsr.sinks.av_sink import StreamTiming
from streamsr.sinks.containers import constant_frame_step, container_for
from streamsr.sources.av_source import AvFileSource

UNSPECIFIED = 2  # AVCOL_SPC / AVCOL_PRI / AVCOL_TRC unspecified
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
BT709, BT470BG, SMPTE170M = 1, 5, 6


def is_hd(width: int, height: int) -> bool:
    """The size rule players use for untagged video (FFmpeg's and mpv's: BT.709 from 1280 wide or above 576 lines)."""
    return width >= 1280 or height > 576


def implied_colour(width: int, height: int, colorspace: int | None, primaries: int | None,
                   color_range: int | None) -> tuple[int, int, int]:
    """(matrix, primaries, range) that a player assumes for a stream of this size and these tags."""
    hd = is_hd(width, height)
    if colorspace in (None, UNSPECIFIED):
        colorspace = BT709 if hd else SMPTE170M
    if primaries in (None, UNSPECIFIED):
        primaries = BT709 if hd else (BT470BG if height == 576 else SMPTE170M)
    if color_range in (None, RANGE_UNSPECIFIED):
        color_range = RANGE_LIMITED
    return colorspace, primaries, color_range


def _enum(value: object) -> int | None:
    return None if value is None else int(value)


def output_timing(source: AvFileSource, output: Path) -> StreamTiming:
    """The StreamTiming of ``output`` for frames from ``source``."""
    info = source.info
    cc = source.codec_context
    first = source.first_frame
    colorspace = _enum(first.colorspace) or _enum(cc.colorspace)
    primaries = _enum(cc.color_primaries)
    color_range = RANGE_FULL if source.full_range else (_enum(first.color_range) or _enum(cc.color_range))
    if source.rgb_source:
        colorspace, color_range = RGB_SOURCE_COLORSPACE, RGB_SOURCE_RANGE
    colorspace, primaries, color_range = implied_colour(info.width, info.height, colorspace, primaries, color_range)
    rate = info.rate
    if container_for(output).frame_time_base:  # AVI: the one frame step of the input
        step = constant_frame_step(source.path)
        rate = 1 / (step / 2 if source.per_field else step)
    return StreamTiming(
        time_base=info.time_base or (1 / Fraction(info.rate or 25)),
        rate=rate,
        colorspace=colorspace,
        color_range=color_range,
        color_primaries=primaries,
        color_trc=_enum(cc.color_trc),
        rotation=info.rotation,
        layout=source.layout,
    )
