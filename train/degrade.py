"""CCTV degradations of low-resolution luma: blur, sensor noise, JPEG or H.264 compression.

Real surveillance footage is soft, noisy and compressed; a model trained only on clean
bicubic LR sharpens the block artifacts. :class:`CCTVDegradation` draws a random strength for
each stage from the config's ranges and applies, in camera order, to a uint8-scale LR plane:

1. Gaussian blur (random sigma, in LR pixels): optics, focus, motion;
2. sensor noise: Gaussian (random sigma on the 0..255 scale), sometimes signal-dependent
   (Poisson-like: variance proportional to the level), then rounding to uint8;
3. JPEG at a random quality (``cv2.imencode`` of the grey plane: the same 8x8 DCT and
   quantisation that an H.264 intra frame's luma sees).

The training sampler degrades a margin around each patch and crops the centre, so blur has
its support and the 8x8 grid falls at a random offset. :func:`h264` (PyAV, libx264 at a given
CRF) is here for evaluation and for users; it is too slow per training patch.

Everything takes a ``numpy.random.Generator``, so a seed gives the same output.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from streamsr.errors import ConfigError
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


def h264(img: np.ndarray, crf: int, preset: str = "veryfast") -> np.ndarray:
    """H.264 (libx264, one intra frame, yuv420p with flat chroma) round trip of a grey plane."""
    import av

    plane = to_u8(img)
    h, w = plane.shape
    ph, pw = h + (h & 1), w + (w & 1)  # 4:2:0 needs even sizes
    padded = np.pad(plane, ((0, ph - h), (0, pw - w)), mode="edge")
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = pw, ph, "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"crf": str(int(crf)), "preset": preset, "tune": "zerolatency"}
    yuv = np.concatenate([padded, np.full((ph // 2, pw), 128, np.uint8)], axis=0)
    frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    frame.pts = 0
    packets = list(codec.encode(frame)) + list(codec.encode(None))
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for packet in packets:
        decoded += decoder.decode(packet)
    decoded += decoder.decode(None)
    if not decoded:  # pragma: no cover - libx264 always emits the frame after the flush
        raise ValueError("H.264 round trip produced no frame")
    out = decoded[0].reformat(format="yuv420p").to_ndarray()  # Y plane first, no range conversion
    return np.ascontiguousarray(out[:h, :w])


def compress(img: np.ndarray, spec: str) -> np.ndarray:
    """``jpeg:Q`` or ``h264:CRF`` (or ``none``) applied to a grey uint8 plane."""
    if spec in ("", "none"):
        return to_u8(img)
    kind, _, value = spec.partition(":")
    try:
        strength = int(value)
    except ValueError:
        raise ConfigError(f"bad degradation {spec!r}: expected jpeg:Q or h264:CRF") from None
    if kind == "jpeg":
        return jpeg(img, strength)
    if kind == "h264":
        return h264(img, strength)
    raise ConfigError(f"bad degradation {spec!r}: expected jpeg:Q or h264:CRF")


@dataclass(frozen=True)
class Draw:
    """The strengths drawn for one sample (0 / None: stage skipped)."""

    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    poisson: bool = False
    jpeg_quality: int | None = None


class CCTVDegradation:
    """Random blur -> noise -> JPEG on a uint8-scale LR plane, with ranges from :class:`CCTVConfig`.

    ``strength`` scales every drawn strength (0: identity up to uint8 rounding, 1: the config).
    """

    def __init__(self, cfg: CCTVConfig | None = None, strength: float = 1.0) -> None:
        self.cfg = cfg or CCTVConfig()
        self.strength = float(strength)
        lo, hi = self.cfg.jpeg_quality
        if not (1 <= lo <= hi <= 100):
            raise ConfigError(f"cctv.jpeg_quality: expected 1 <= lo <= hi <= 100, got {self.cfg.jpeg_quality}")

    def draw(self, rng: np.random.Generator) -> Draw:
        c, s = self.cfg, self.strength
        # Always consume the same number of random values, so a seed stays a seed.
        u = rng.random(7)
        blur = c.blur_sigma[0] + u[1] * (c.blur_sigma[1] - c.blur_sigma[0]) if u[0] < c.blur_prob else 0.0
        noise = c.noise_sigma[0] + u[3] * (c.noise_sigma[1] - c.noise_sigma[0]) if u[2] < c.noise_prob else 0.0
        poisson = bool(u[4] < c.poisson_prob)
        quality = None
        if u[5] < c.jpeg_prob and s > 0:
            q = c.jpeg_quality[0] + u[6] * (c.jpeg_quality[1] - c.jpeg_quality[0])
            quality = int(round(100 - s * (100 - q)))  # strength 0 -> q=100, 1 -> q
        return Draw(blur * s, noise * s, poisson, quality)

    def apply(self, img: np.ndarray, rng: np.random.Generator, draw: Draw | None = None) -> np.ndarray:
        """Degrade a 2-D uint8-scale plane (uint8 or float); returns uint8 of the same shape."""
        d = draw or self.draw(rng)
        out = gaussian_blur(img, d.blur_sigma)
        out = add_noise(out, d.noise_sigma, rng, d.poisson)
        if d.jpeg_quality is not None and d.jpeg_quality < 100:
            return jpeg(out, d.jpeg_quality)
        return to_u8(out)
