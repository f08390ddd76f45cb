"""H.264 and HEVC encoder settings, in one place: preset, CRF or QP, tune, GOP and B-frames as
libx264 / libx265 options, and the codec context they go into.

Every encoder streamsr opens is set up here: files (sinks/av_sink.py), recordings
(sinks/segments.py), the RTSP push, generated clips, the benchmark's peer loop
(sinks/video_stream.py) and the codec round trips of the evaluation (lr_degrade.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from streamsr.errors import ConfigError
from streamsr.hwcodecs import NVENC, nvenc_options

ENCODERS = {"h264": "libx264", "hevc": "libx265"}
_PARAMS_OPTION = {"h264": "x264-params", "hevc": "x265-params"}


@dataclass(frozen=True)
class VideoEncoding:
    """What an encoder is asked for; ``None`` leaves the encoder's default."""

    codec: str = "h264"  # h264 | hevc
    preset: str | None = None
    crf: int | None = None
    qp: int | None = None  # a constant quantiser (0 with libx264 is lossless)
    tune: str | None = None  # zerolatency for live outputs and camera-like clips
    gop: int | None = None  # frames from one keyframe to the next (keyint)
    b_frames: bool = True  # False: frames are stored in presentation order (AVI)
    params: tuple[str, ...] = ()  # more key=value pairs for x264-params / x265-params
    nvenc: bool = False  # NVIDIA's encoder (h264_nvenc, hevc_nvenc) instead of x264/x265 (hwcodecs.py)

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS:
            raise ConfigError(f"unknown codec {self.codec!r} (choose from {', '.join(ENCODERS)})")

    @property
    def encoder(self) -> str:
        """The FFmpeg encoder's name (libx264, libx265, h264_nvenc, hevc_nvenc)."""
        return NVENC[self.codec] if self.nvenc else ENCODERS[self.codec]

    def options(self) -> dict[str, str]:
        """The encoder's AVOptions. libx265 always gets ``log-level=error``: its info lines
        would otherwise go straight to stderr, past the logging."""
        if self.nvenc:
            return nvenc_options(self.preset, self.crf, self.qp, self.tune, self.gop, self.b_frames)
        options: dict[str, str] = {}
        for key, value in (("preset", self.preset), ("crf", self.crf), ("qp", self.qp), ("tune", self.tune)):
            if value is not None:
                options[key] = str(value)
        params = ["log-level=error"] if self.codec == "hevc" else []
        if self.gop is not None:
            params.append(f"keyint={self.gop}")
        params += self.params
        if not self.b_frames:
            options["bf"] = "0"
            if self.codec == "hevc":
                params.append("bframes=0")
        if params:
            options[_PARAMS_OPTION[self.codec]] = ":".join(params)
        return options


def configure_encoder(cc: Any, encoding: VideoEncoding, size: tuple[int, int], *, pix_fmt: str = "yuv420p",
                      time_base: Fraction | None = None, colour_tags: Mapping[str, int | None] | None = None,
                      codec_tag: str | None = None) -> None:
    """Set up a PyAV video encoder's codec context ``cc`` (not yet opened).

    ``size`` is (width, height); ``colour_tags`` are codec-context attributes (colorspace,
    color_range, color_primaries, color_trc; see colour.Colour.encoder_tags), the ``None``
    ones left untagged; ``codec_tag`` is the container's name for the codec (hvc1).
    """
    cc.width, cc.height = size
    cc.pix_fmt = pix_fmt
    if time_base is not None:
        cc.time_base = time_base
    for attr, value in (colour_tags or {}).items():
        if value is not None:
            setattr(cc, attr, value)
    cc.options = encoding.options()
    if codec_tag is not None:
        cc.codec_tag = codec_tag
