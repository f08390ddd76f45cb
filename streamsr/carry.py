"""What an output video inherits from its input: timing, colour tags, layout and rotation.

Colour: the matrix, range, primaries and transfer (HLG, PQ included) are copied. An input
that does not say its matrix is decoded by players with a guess made from its *size*
(colour.implied_colour). Upscaling can move a clip across that line (640x480 becomes
1280x960), so an untagged output would be shown with the other matrix and wrong colours. The
output is therefore tagged with what the input was shown as.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from streamsr.colour import RANGES, RGB_SOURCE_COLORSPACE, RGB_SOURCE_RANGE, implied_colour
from streamsr.sinks.av_sink import StreamTiming
from streamsr.sinks.containers import constant_frame_step, container_for
from streamsr.sources.av_source import AvFileSource

def _enum(value: object) -> int | None:
    return None if value is None else int(value)


def output_timing(source: AvFileSource, output: Path) -> StreamTiming:
    """The StreamTiming of ``output`` for frames from ``source``."""
    info = source.info
    cc = source.codec_context
    first = source.first_frame
    colorspace = _enum(first.colorspace) or _enum(cc.colorspace)
    primaries = _enum(cc.color_primaries)
    color_range = RANGES["pc"] if source.full_range else (_enum(first.color_range) or _enum(cc.color_range))
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
