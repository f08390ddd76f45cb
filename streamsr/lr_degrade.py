"""Compressed low-resolution input, for evaluating models on what cameras and files give.

A degradation is written ``none``, ``jpeg:Q``, ``h264:CRF`` or ``hevc:CRF``:

* ``jpeg:Q``: the RGB LR image saved as a JPEG of quality Q with 4:2:0 chroma (OpenCV's
  default for colour), decoded again;
* ``h264:CRF`` / ``hevc:CRF``: a short clip of LR crops that pans one LR pixel per frame
  down and to the right (so motion compensation has work to do, as in real footage),
  encoded by libx264 / libx265 at that CRF (``veryfast``, zero latency: no B-frames, as
  camera encoders), and decoded again. Every decoded frame is scored against the HR crop
  it came from.

The frames are built from the protocol's own luma (BT.601 limited range, rounded to
``uint8``) and swscale's chroma, so the only difference between a clean and a compressed
row is the codec.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import cv2
import numpy as np

from streamsr.codec_qp import DECODER_OPTIONS, frame_mean_qp
from streamsr.colour import BT601_TV, rgb_to_yuv420_swscale
from streamsr.encoding import ENCODERS, VideoEncoding, configure_encoder
from streamsr.errors import ConfigError
from streamsr.pixfmt import YUV420P, frame_from_planes

if TYPE_CHECKING:
    import av

KINDS = ("none", "jpeg", "h264", "hevc")
CLIP_FRAMES = 8  # frames per image in a compressed clip; the crop moves 1 LR px per frame
VIDEO_ENCODERS = ENCODERS


@dataclass(frozen=True)
class LRDegradation:
    kind: str = "none"
    strength: int = 0  # JPEG quality or CRF

    @classmethod
    def parse(cls, spec: str) -> LRDegradation:
        kind, _, value = spec.strip().lower().partition(":")
        if kind in ("", "none"):
            return cls()
        if kind not in KINDS or not value:
            raise ConfigError(f"bad LR degradation {spec!r}: expected none, jpeg:Q, h264:CRF or hevc:CRF")
        try:
            strength = int(value)
        except ValueError:
            raise ConfigError(f"bad LR degradation {spec!r}: {value!r} is not an integer") from None
        if kind == "jpeg" and not 1 <= strength <= 100:
            raise ConfigError(f"bad LR degradation {spec!r}: JPEG quality must be in 1..100")
        if kind in VIDEO_ENCODERS and not 0 <= strength <= 51:
            raise ConfigError(f"bad LR degradation {spec!r}: CRF must be in 0..51")
        return cls(kind, strength)

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.strength}"

    @property
    def is_clip(self) -> bool:
        return self.kind in VIDEO_ENCODERS


def jpeg_rgb(rgb: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of a ``uint8`` RGB (or grey) image, 4:2:0 chroma."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if rgb.ndim == 3:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    ok, buf = cv2.imencode(".jpg", bgr, params)
    if not ok:  # pragma: no cover - OpenCV only fails on empty images
        raise ValueError("cv2.imencode failed")
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if out.ndim == 3 else out


def clip_offsets(lr_shape: tuple[int, int], frames: int = CLIP_FRAMES) -> tuple[list[int], tuple[int, int]]:
    """Offsets (same in y and x) and the even (h, w) of the crops of a panning clip."""
    h, w = lr_shape
    ch, cw = (h - frames + 1) & ~1, (w - frames + 1) & ~1
    if ch < 16 or cw < 16:
        raise ConfigError(f"image of {w}x{h} LR pixels is too small for a {frames}-frame clip")
    return list(range(frames)), (ch, cw)


def _yuv420_frame(y: np.ndarray, rgb: np.ndarray):  # -> av.VideoFrame
    """A yuv420p frame whose luma is exactly ``y`` and whose chroma is swscale's (BT.601 limited)."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    _, cb, cr = rgb_to_yuv420_swscale(rgb, BT601_TV)
    return frame_from_planes((y, cb, cr), YUV420P)


def codec_round_trip(frames: list[av.VideoFrame], codec: str, crf: int, threads: int = 0,
                     export_qp: bool = False) -> list[av.VideoFrame]:
    """yuv420p frames through libx264/libx265 at ``crf`` and back: ``veryfast``, zero latency (no
    B-frames), as camera encoders; ``threads`` 0 lets the encoder choose, 1 keeps it on one core."""
    import av

    h, w = frames[0].height, frames[0].width
    one_core = ("pools=none", "frame-threads=1") if codec == "hevc" and threads == 1 else ()
    encoding = VideoEncoding(codec, preset="veryfast", crf=int(crf), tune="zerolatency", params=one_core)
    enc = av.CodecContext.create(encoding.encoder, "w")
    configure_encoder(enc, encoding, (w, h), time_base=Fraction(1, 25))
    enc.thread_count = threads
    packets = []
    for i, frame in enumerate(frames):
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    dec = av.CodecContext.create(codec, "r")
    if export_qp:  # the frames' QPs as side data, where the decoder exports them (H.264)
        dec.options = dict(DECODER_OPTIONS)
    decoded = []
    for p in packets:
        decoded += dec.decode(p)
    decoded += dec.decode(None)
    if len(decoded) != len(frames):  # pragma: no cover - the encoders emit every frame after the flush
        raise ValueError(f"{codec} round trip gave {len(decoded)} of {len(frames)} frames")
    return decoded


def encode_clip(lumas: list[np.ndarray], rgbs: list[np.ndarray], codec: str,
                crf: int) -> tuple[list[np.ndarray], list[float | None]]:
    """Encode frames (uint8 luma + RGB for chroma, even sizes); return the decoded luma planes
    and each frame's mean QP (None where the decoder exports none: HEVC)."""
    h = lumas[0].shape[0]
    # one encoder thread: x264's sliced threads would make the clip depend on the CPU count
    decoded = codec_round_trip([_yuv420_frame(y, rgb) for y, rgb in zip(lumas, rgbs)], codec, crf, threads=1,
                               export_qp=True)
    return [np.ascontiguousarray(f.to_ndarray(format="yuv420p")[:h]) for f in decoded], [frame_mean_qp(f) for f in decoded]
