"""NVIDIA's video codecs through PyAV: NVDEC decoders (``h264_cuvid``...) and NVENC encoders
(``h264_nvenc``, ``hevc_nvenc``), and which of them a run uses.

PyAV's wheels carry both, but they only open where the NVIDIA driver is present (elsewhere
``avcodec_open2`` fails at once). ``--decoder`` and ``--encoder`` take ``auto`` (the default:
NVIDIA's codecs when the model runs on the GPU engines and they open here, else the CPU's),
``cpu``, or ``nvdec`` / ``nvenc`` (asked for explicitly: an error if they cannot open).
``on_gpu`` says whether the model runs on a GPU engine (backends.runs_on_gpu).
Whatever is chosen is said in the run's summary.
"""
from __future__ import annotations

import logging
from fractions import Fraction
from functools import lru_cache

from streamsr.errors import ConfigError

log = logging.getLogger(__name__)

NVDEC = {"h264": "h264_cuvid", "hevc": "hevc_cuvid", "mpeg2video": "mpeg2_cuvid", "mpeg4": "mpeg4_cuvid",
         "vp9": "vp9_cuvid", "av1": "av1_cuvid", "mjpeg": "mjpeg_cuvid", "vc1": "vc1_cuvid"}
NVENC = {"h264": "h264_nvenc", "hevc": "hevc_nvenc"}
DECODER_CHOICES = ("auto", "cpu", "nvdec")
ENCODER_CHOICES = ("auto", "cpu", "nvenc")


@lru_cache(maxsize=None)
def unavailable(name: str, mode: str) -> str | None:
    """Why the codec ``name`` cannot open here (``mode`` "r" or "w"), or None if it can."""
    import av

    try:
        ctx = av.CodecContext.create(name, mode)
        if mode == "w":
            ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 256, 144, "yuv420p", Fraction(1, 25)
        ctx.open()
    except (av.error.FFmpegError, OSError, ValueError) as e:
        return f"{name} does not open here ({getattr(e, 'strerror', None) or e}; it needs an NVIDIA GPU and driver)"
    return None


def choose_decoder(request: str, codec: str, on_gpu: bool) -> str | None:
    """The NVDEC decoder to use for ``codec``, or None for FFmpeg's CPU decoder."""
    name = NVDEC.get(codec)
    missing = f"NVDEC has no decoder for {codec}" if name is None else None
    return name if _use_nvidia(request, "nvdec", DECODER_CHOICES, on_gpu, name, "r", missing) else None


def choose_encoder(request: str, codec: str, on_gpu: bool) -> bool:
    """Whether to encode ``codec`` with NVENC (else x264/x265)."""
    return _use_nvidia(request, "nvenc", ENCODER_CHOICES, on_gpu, NVENC[codec], "w", None)


def _use_nvidia(request: str, explicit: str, choices: tuple[str, ...], on_gpu: bool, name: str | None, mode: str,
                missing: str | None) -> bool:
    """``request`` (auto, cpu or ``explicit``) resolved: True to use the NVIDIA codec ``name``."""
    option = "--decoder" if mode == "r" else "--encoder"
    if request not in choices:
        raise ConfigError(f"unknown {option} {request!r} (choose from {', '.join(choices)})")
    if request == "cpu" or (request == "auto" and not on_gpu):
        return False
    why = missing or (unavailable(name, mode) if name else None)
    if why is None:
        return True
    if request == explicit:
        raise ConfigError(f"{option} {explicit}: {why}")
    log.info("%s on the CPU: %s", "decoding" if mode == "r" else "encoding", why)
    return False


# x264's presets to NVENC's p1 (fastest) .. p7 (best), and its tunes to NVENC's.
NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p4", "fast": "p4",
                 "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7", "placebo": "p7"}
NVENC_TUNES = {"zerolatency": "ull", "film": "hq", "animation": "hq", "grain": "hq", "stillimage": "hq"}


def nvenc_options(preset: str | None, crf: int | None, qp: int | None, tune: str | None, gop: int | None,
                  b_frames: bool) -> dict[str, str]:
    """NVENC's AVOptions for x264-style settings: CRF becomes constant quality (``rc vbr``,
    ``cq``), QP a constant quantiser; ``preset``/``tune`` map to p1..p7 and hq/ull."""
    options: dict[str, str] = {}
    if preset is not None:
        options["preset"] = NVENC_PRESETS.get(preset, preset)
    options["tune"] = NVENC_TUNES.get(tune or "", "hq")
    if qp is not None:
        options.update(rc="constqp", qp=str(qp))
    elif crf is not None:
        options.update(rc="vbr", cq=str(max(crf, 1)), b="0")  # cq 0 means "automatic" to NVENC
    if gop is not None:
        options["g"] = str(gop)
    if not b_frames:
        options["bf"] = "0"
    return options
