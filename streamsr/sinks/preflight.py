"""Checks of the encoder options and the output container, made before the model loads.

A bad ``--crf`` or ``--preset``, or an output name whose container cannot hold the video
codec or the input's audio, must fail at once with its own message, not after the model
has loaded and frames have been processed, and not blamed on something else.
"""
from __future__ import annotations

import re
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamsr.errors import ConfigError, OutputError
from streamsr.sinks.av_sink import ENCODERS, AvFileSink, EncodeSettings, StreamTiming
from streamsr.types import Frame

# x264 and x265 share these names, fastest first.
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
CRF_RANGE = (0, 51)  # both encoders, 8-bit
SUGGESTED = ".mp4, .mkv or .mov"


def check_encode_settings(settings: EncodeSettings) -> None:
    """Raise ConfigError for an unknown codec or preset, or a CRF out of range."""
    if settings.codec not in ENCODERS:
        raise ConfigError(f"unknown --codec {settings.codec!r} (choose from {', '.join(ENCODERS)})")
    if settings.preset not in PRESETS:
        raise ConfigError(f"unknown --preset {settings.preset!r} for {settings.codec} "
                          f"(choose from {', '.join(PRESETS)})")
    low, high = CRF_RANGE
    if not low <= settings.crf <= high:
        raise ConfigError(f"--crf {settings.crf} is out of range: {settings.codec} takes {low} (lossless) "
                          f"to {high} (lowest quality)")


def check_video_output(output: Path, size: tuple[int, int], timing: StreamTiming, settings: EncodeSettings,
                       copy_from: Path | None) -> None:
    """Open the real sink for ``output``'s container in a scratch folder and encode one black
    frame of ``size`` (the output's width and height), so that what would fail, fails now."""
    check_encode_settings(settings)
    if str(output) == "-":
        raise OutputError("writing video to a pipe (-o -) is not supported: give an output file name")
    with tempfile.TemporaryDirectory(prefix="streamsr-check-") as scratch:
        probe = Path(scratch) / f"probe{output.suffix}"
        sink = AvFileSink(probe, timing, settings, copy_from=copy_from, quiet=True)
        try:
            sink.write(_black_frame(size, timing.time_base))
        except (OutputError, ValueError, av.error.FFmpegError) as e:
            raise OutputError(_explain(e, output, settings, scratch)) from None
        finally:
            sink.abort()


def _black_frame(size: tuple[int, int], time_base: Fraction) -> Frame:
    width, height = size
    y = np.full((height, width), 16, np.uint8)
    c = np.full(((height + 1) // 2, (width + 1) // 2), 128, np.uint8)
    return Frame(index=0, planes=(y, c, c), pts=0, time_base=time_base)


def _explain(e: BaseException, output: Path, settings: EncodeSettings, scratch: str) -> str:
    text = re.sub(re.escape(scratch) + r"/[^'\s]*", str(output), str(e))
    suffix = output.suffix or "(no extension)"
    if "Could not determine output format" in text:
        return f"cannot write {output}: no container is known for {suffix} files (use {SUGGESTED})"
    if "does not support" in text and settings.encoder in text:
        return f"{suffix} files cannot hold {settings.codec} video (use {SUGGESTED}, or another --codec)"
    if "cannot copy" in text:
        return text
    reason = text.split("cannot hold these streams: ", 1)[-1].split(": '", 1)[0]
    return (f"cannot write {output}: the {suffix} container does not take {settings.codec} video "
            f"with this input's streams ({reason}); use {SUGGESTED}")
