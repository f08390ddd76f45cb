"""CCTV degradations of low-resolution luma: blur, sensor noise, then JPEG, H.264 or HEVC.

Real surveillance footage is soft, noisy and compressed; a model trained only on clean
bicubic LR sharpens the block artifacts. :class:`CCTVDegradation` draws a random strength for
each stage from the config's ranges and applies them, in camera order, to a whole LR image
(uint8 scale):

1. Gaussian blur (random sigma, in LR pixels): optics, focus, motion;
2. sensor noise: Gaussian (random sigma on the 0..255 scale), sometimes signal-dependent
   (Poisson-like: variance proportional to the level), then rounding to uint8;
3. one codec, drawn with the config's probabilities (or none):
   * JPEG at a random quality (``cv2.imencode`` of the grey plane: the 8x8 DCT and
     quantisation that a video intra frame's luma also sees);
   * H.264 (libx264) or HEVC (libx265) at a random CRF, on a short clip that pans towards
     the image with a random motion of up to ``motion`` px per frame, so the kept last frame
     is a P-frame predicted from moved pictures (a clip of one frame is an I-frame).
     ``veryfast``, zero latency (no B-frames), one thread: what camera encoders do.

The training sampler (:mod:`train.data`) degrades whole images and cuts patches anywhere
in them, so the codec's block grid falls at every offset of a patch.

Everything takes a ``numpy.random.Generator``, so a seed gives the same output.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamsr.errors import ConfigError
from streamsr.lr_degrade import VIDEO_ENCODERS as ENCODERS
from streamsr.lr_degrade import codec_round_trip
from train.config import CCTVConfig



def to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Blur a 2-D plane (any dtype, returned float32); sigma <= 0 is the identity."""
    out = img.astype(np.float32, copy=True)
    if sigma <= 1e-3:
        return out
    k = 2 * int(np.ceil(3.0 * sigma)) + 1
    return cv2.GaussianBlur(out, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator, poisson: bool = False) -> np.ndarray:
    """Gaussian noise of std ``sigma`` (0..255 scale); ``poisson``: std ``sigma * sqrt(level / 128)``."""
    out = img.astype(np.float32, copy=True)
    if sigma <= 0:
        return out
    noise = rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
    if poisson:
        noise *= np.sqrt(np.clip(out, 0, 255) / np.float32(128.0))
    return out + noise


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of a grey uint8-scale plane at ``quality`` (1..100), returned uint8."""
    if not 1 <= quality <= 100:
        raise ConfigError(f"JPEG quality must be in 1..100, got {quality}")
    ok, buf = cv2.imencode(".jpg", to_u8(img), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 only fails on empty images
        raise ValueError("cv2.imencode failed")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def video(img: np.ndarray, codec: str, crf: int, frames: int = 1, motion: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``img`` as the last frame of a ``frames``-long clip panning by ``motion`` (dy, dx) per frame.

    The earlier frames are the image shifted by whole multiples of the motion (edges
    reflected), so the kept frame is predicted from moved content. Grey planes, neutral chroma.
    """
    import av

    if codec not in ENCODERS:
        raise ConfigError(f"unknown video codec {codec!r}: expected one of {sorted(ENCODERS)}")
    plane = to_u8(img)
    h, w = plane.shape
    ph, pw = h + (h & 1), w + (w & 1)  # 4:2:0 needs even sizes
    reach = (frames - 1) * max(abs(motion[0]), abs(motion[1]))
    padded = np.pad(plane, ((reach, reach + ph - h), (reach, reach + pw - w)), mode="reflect")
    chroma = np.full((ph // 2, pw), 128, np.uint8)
    clip = []
    for t in range(frames):
        back = frames - 1 - t  # frames still to go: the last frame sits at the image itself
        y0, x0 = reach - back * motion[0], reach - back * motion[1]
        yuv = np.concatenate([padded[y0 : y0 + ph, x0 : x0 + pw], chroma])
        clip.append(av.VideoFrame.from_ndarray(yuv, format="yuv420p"))
    decoded = codec_round_trip(clip, codec, crf, threads=1)
    return np.ascontiguousarray(decoded[-1].to_ndarray(format="yuv420p")[:h, :w])


@dataclass(frozen=True)
class Draw:
    """The strengths drawn for one image (0 / None: stage skipped)."""

    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    poisson: bool = False
    codec: str | None = None  # "jpeg", "h264", "hevc"
    quality: int = 100  # JPEG quality, or CRF for the video codecs
    frames: int = 1
    motion: tuple[int, int] = (0, 0)


def _uniform(lo: float, hi: float, u: float) -> float:
    return lo + u * (hi - lo)


class CCTVDegradation:
    """Random blur -> noise -> codec on a uint8-scale LR plane, with ranges from :class:`CCTVConfig`.

    ``strength`` scales every drawn strength (0: identity up to uint8 rounding, 1: the config).
    """

    def __init__(self, cfg: CCTVConfig | None = None, strength: float = 1.0) -> None:
        self.cfg = cfg or CCTVConfig()
        self.strength = float(strength)
        c = self.cfg
        if not (1 <= c.jpeg_quality[0] <= c.jpeg_quality[1] <= 100):
            raise ConfigError(f"cctv.jpeg_quality: expected 1 <= lo <= hi <= 100, got {c.jpeg_quality}")
        if not (0 <= c.crf[0] <= c.crf[1] <= 51):
            raise ConfigError(f"cctv.crf: expected 0 <= lo <= hi <= 51, got {c.crf}")
        if min(c.jpeg_prob, c.h264_prob, c.hevc_prob) < 0 or c.jpeg_prob + c.h264_prob + c.hevc_prob > 1.0 + 1e-9:
            raise ConfigError("cctv: jpeg_prob + h264_prob + hevc_prob must be within 0..1")
        if not 1 <= c.clip_frames[0] <= c.clip_frames[1]:
            raise ConfigError(f"cctv.clip_frames: expected 1 <= lo <= hi, got {c.clip_frames}")

    def draw(self, rng: np.random.Generator) -> Draw:
        c, s = self.cfg, self.strength
        # Always consume the same number of random values, so a seed stays a seed.
        u = rng.random(10)
        blur = _uniform(*c.blur_sigma, u[1]) if u[0] < c.blur_prob else 0.0
        noise = _uniform(*c.noise_sigma, u[3]) if u[2] < c.noise_prob else 0.0
        poisson = bool(u[4] < c.poisson_prob)
        codec, quality = None, 100
        if s > 0 and u[5] < c.jpeg_prob:
            codec = "jpeg"
            quality = int(round(100 - s * (100 - _uniform(*c.jpeg_quality, u[6]))))  # strength 0 -> q=100
        elif s > 0 and u[5] < c.jpeg_prob + c.h264_prob + c.hevc_prob:
            codec = "h264" if u[5] < c.jpeg_prob + c.h264_prob else "hevc"
            quality = int(round(s * _uniform(*c.crf, u[6])))  # strength 0 -> CRF 0 (lossless)
        frames = int(c.clip_frames[0] + int(u[7] * (c.clip_frames[1] - c.clip_frames[0] + 1)))
        motion = (int(u[8] * (2 * c.motion + 1)) - c.motion, int(u[9] * (2 * c.motion + 1)) - c.motion)
        return Draw(blur * s, noise * s, poisson, codec, quality, frames, motion)

    def apply(self, img: np.ndarray, rng: np.random.Generator, draw: Draw | None = None) -> np.ndarray:
        """Degrade a 2-D uint8-scale plane (uint8 or float); returns uint8 of the same shape."""
        d = draw or self.draw(rng)
        out = gaussian_blur(img, d.blur_sigma)
        out = add_noise(out, d.noise_sigma, rng, d.poisson)
        if d.codec == "jpeg" and d.quality < 100:
            return jpeg(out, d.quality)
        if d.codec in ENCODERS:
            return video(out, d.codec, d.quality, d.frames, d.motion)
        return to_u8(out)
