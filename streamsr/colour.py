"""Colour conversions and chroma handling, in one place.

Video stays in YCbCr end to end: Y-channel models see the decoded Y plane, chroma is
upscaled classically and the output is written with the input's matrix and range, so no
RGB round trip happens per frame. Every conversion between RGB/BGR and YCbCr in streamsr is
here, each named with its matrix and range:

- images (RGB files): full-range BT.601, as JPEG does (OpenCV's YCrCb): ``bgr_to_planes``;
- live frames (preview, window, webcams): the frame's own ``Colour``: ``ycbcr_to_bgr``,
  ``bgr_to_ycbcr``, ``bgr_to_yuv420``;
- generated clips and codec round trips: FFmpeg's swscale in a given ``Colour``:
  ``rgb_to_yuv420_swscale`` (what FFmpeg itself would encode from RGB);
- the evaluation protocol's Y: BT.601 limited range as MATLAB's ``rgb2ycbcr``:
  ``matlab_rgb2ycbcr_y``;
- code values of luma to the models' [0, 1] and back: ``LumaScale``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# What RGB video sources (rgb24, gbrp, palette) are converted to YUV with, and tagged as in
# the output: FFmpeg's swscale default, BT.601 (SMPTE 170M) matrix, limited range.
RGB_SOURCE_COLORSPACE = 6  # AVCOL_SPC_SMPTE170M
RGB_SOURCE_RANGE = 1  # AVCOL_RANGE_MPEG (limited)


@dataclass(frozen=True)
class LumaScale:
    """How code values of a luma plane map to the [0, 1] floats the models take.

    The shipped models were trained on 8-bit limited-range Y / 255 (16/255 is black,
    235/255 white), and the 8-bit path has always fed ``Y / 255``. Deeper video keeps that
    meaning exactly: a limited-range n-bit code is ``(219 * E + 16) * 2**(n - 8)``, so it is
    divided by ``255 * 2**(n - 8)`` (10-bit black 64 and white 940 land on 16/255 and 235/255,
    as in 8 bits). A full-range n-bit code ``(2**n - 1) * E`` (images, JPEG-range cameras) is
    mapped onto that same limited-range unit, ``(219 * E + 16) / 255``: full black reaches the
    model as 16/255 and full white as 235/255, the levels it was trained on (fed as ``/ 255``
    instead, full-range black would arrive at 0.0: 0.03-0.06 dB lower on Set14, measured, and
    shadows outside the training range). A naive ``/ 1023`` for limited range would shift
    every level.
    """

    bits: int = 8
    full_range: bool = False

    @property
    def peak(self) -> int:
        return (1 << self.bits) - 1

    @property
    def unit(self) -> float:
        """The code value that maps to 1.0."""
        if self.bits <= 8 or self.full_range:
            return float(self.peak)
        return 255.0 * (1 << (self.bits - 8))

    @property
    def dtype(self) -> type:
        return np.uint8 if self.bits <= 8 else np.uint16

    def to_unit(self) -> tuple[float, float]:
        """(gain, offset) of the map to the models' unit: ``unit = code * gain + offset``."""
        if self.full_range:
            return _FULL_GAIN / self.unit, _FULL_OFFSET
        return 1.0 / self.unit, 0.0

    def from_unit(self) -> tuple[float, float]:
        """(offset, gain) of the way back: ``code = (unit - offset) * gain`` (before rounding)."""
        if self.full_range:
            return _FULL_OFFSET, self.unit / _FULL_GAIN
        return 0.0, self.unit


_FULL_GAIN, _FULL_OFFSET = 219.0 / 255.0, 16.0 / 255.0  # full-range E -> the models' limited-range unit


def luma_to_unit(planes: np.ndarray, scale: LumaScale) -> np.ndarray:
    """uint8/uint16 code values -> float32 in the models' [0, 1] (see LumaScale)."""
    gain, offset = scale.to_unit()
    x = planes.astype(np.float32)
    x *= gain
    if offset:
        x += offset
    return x


def unit_to_luma(values: np.ndarray, scale: LumaScale) -> np.ndarray:
    """Floats from a model -> code values of ``scale``, rounded and clamped to [0, peak]."""
    offset, gain = scale.from_unit()
    y = np.asarray(values, dtype=np.float32)
    y = (y - offset) * gain if offset else y * gain
    y += 0.5
    np.clip(y, 0.0, float(scale.peak), out=y)
    return y.astype(scale.dtype)


def unit_to_full_range(unit: np.ndarray) -> np.ndarray:
    """The models' unit (limited-range luma: black 16/255, white 235/255) as full-range luma in
    [0, 1], unrounded: what OpenCV's YCrCb and JPEG call Y (dnn_superres feeds its nets this)."""
    return (unit * 255.0 - 16.0) / 219.0


def full_range_to_unit(full: np.ndarray) -> np.ndarray:
    """Full-range luma in [0, 1] as the models' unit, unrounded (the inverse of unit_to_full_range;
    LumaScale(8, full_range=True) maps 8-bit full-range codes the same way)."""
    return (full * 219.0 + 16.0) / 255.0


def chroma_factor(plane_len: int, luma_len: int) -> int:
    """The power of two that maps a luma length to this chroma length (odd sizes round up)."""
    for factor in (1, 2, 4):
        if -(-luma_len // factor) == plane_len:
            return factor
    return 2 if plane_len < luma_len else 1


def upscale_chroma(plane: np.ndarray, luma_in: tuple[int, int], luma_out: tuple[int, int]) -> np.ndarray:
    """Bicubic upscale of one chroma plane so that it fits a luma plane of ``luma_out``.

    Subsampling is inferred from the input pair, which keeps odd sizes right
    (a 5-pixel-wide luma has a 3-pixel-wide 4:2:0 chroma; 10 wide needs 5, not 6).
    Sizes are (height, width).
    """
    sub_h = chroma_factor(plane.shape[0], luma_in[0])
    sub_w = chroma_factor(plane.shape[1], luma_in[1])
    out_h = -(-luma_out[0] // sub_h)
    out_w = -(-luma_out[1] // sub_w)
    return cv2.resize(plane, (out_w, out_h), interpolation=cv2.INTER_CUBIC)


def upscale_planes_classic(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray], scale: int, interpolation: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All three planes upscaled by one classical filter (for bicubic/nearest references)."""
    y = planes[0]
    out = (y.shape[0] * scale, y.shape[1] * scale)
    y2 = cv2.resize(y, (out[1], out[0]), interpolation=interpolation)
    chroma = []
    for c in planes[1:]:
        sub_h = chroma_factor(c.shape[0], y.shape[0])
        sub_w = chroma_factor(c.shape[1], y.shape[1])
        size = (-(-out[1] // sub_w), -(-out[0] // sub_h))
        chroma.append(cv2.resize(c, size, interpolation=interpolation))
    return y2, chroma[0], chroma[1]


def bgr_to_planes(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An 8- or 16-bit BGR image to full-range BT.601 (Y, Cb, Cr) planes of the same depth."""
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    return ycrcb[..., 0].copy(), ycrcb[..., 2].copy(), ycrcb[..., 1].copy()


def planes_to_bgr(planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Full-size (4:4:4) full-range BT.601 planes back to a BGR image of the same depth."""
    y, cb, cr = planes
    return cv2.cvtColor(np.dstack([y, cr, cb]), cv2.COLOR_YCrCb2BGR)


def gray_to_planes(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gray (8- or 16-bit) as Y with neutral chroma (the middle code: 128 or 32768)."""
    neutral = np.full_like(gray, (np.iinfo(gray.dtype).max + 1) // 2)
    return gray, neutral, neutral.copy()


# -- colour description of YCbCr video: matrix and range, carried on every live frame --------
# FFmpeg's enum values (AVColorSpace, AVColorPrimaries, AVColorTransferCharacteristic,
# AVColorRange), so encoders can be tagged with what the decoder read.
MATRICES = {"bt709": 1, "fcc": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "bt2020nc": 9, "bt2020c": 10}
PRIMARIES = {"bt709": 1, "bt470m": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "bt2020": 9}
TRANSFERS = {"bt709": 1, "gamma22": 4, "gamma28": 5, "smpte170m": 6, "smpte240m": 7, "iec61966-2-1": 13,
             "bt2020-10": 14, "bt2020-12": 15}
RANGES = {"tv": 1, "pc": 2}
# (Kr, Kb) of each matrix; BT.601 (bt470bg and smpte170m) share theirs.
_KR_KB = {"bt709": (0.2126, 0.0722), "fcc": (0.30, 0.11), "bt470bg": (0.299, 0.114), "smpte170m": (0.299, 0.114),
          "smpte240m": (0.212, 0.087), "bt2020nc": (0.2627, 0.0593), "bt2020c": (0.2627, 0.0593)}
# Primaries and transfer to tag when the source said only its matrix (or nothing).
_TAG_DEFAULTS = {"bt709": ("bt709", "bt709"), "smpte170m": ("smpte170m", "smpte170m"),
                 "bt470bg": ("bt470bg", "smpte170m"), "smpte240m": ("smpte240m", "smpte240m"),
                 "bt2020nc": ("bt2020", "bt2020-10"), "bt2020c": ("bt2020", "bt2020-10")}


@dataclass(frozen=True)
class Colour:
    """How a frame's YCbCr planes map to RGB: ``matrix`` and ``range`` (``tv`` limited, ``pc`` full).

    ``primaries`` and ``transfer`` ride along only to tag encoders; no conversion uses them.
    """

    matrix: str = "smpte170m"
    range: str = "tv"
    primaries: str | None = None
    transfer: str | None = None

    def __post_init__(self) -> None:
        if self.matrix not in MATRICES:
            raise ValueError(f"unknown colour matrix {self.matrix!r} (known: {', '.join(MATRICES)})")
        if self.range not in RANGES:
            raise ValueError(f"colour range must be tv or pc, not {self.range!r}")

    @property
    def full_range(self) -> bool:
        return self.range == "pc"

    def encoder_tags(self) -> dict[str, int]:
        """Attributes for a PyAV ``VideoCodecContext`` (or ``VideoFrame``): colorspace, range,
        primaries and transfer. Untagged primaries/transfer follow the matrix, so an SD source
        upscaled to HD still says BT.601 and players do not guess BT.709 from the new size."""
        default_primaries, default_transfer = _TAG_DEFAULTS.get(self.matrix, (None, None))
        primaries = self.primaries or default_primaries
        transfer = self.transfer or default_transfer
        tags = {"colorspace": MATRICES[self.matrix], "color_range": RANGES[self.range]}
        if primaries in PRIMARIES:
            tags["color_primaries"] = PRIMARIES[primaries]
        if transfer in TRANSFERS:
            tags["color_trc"] = TRANSFERS[transfer]
        return tags


BT601_TV = Colour("smpte170m", "tv")


# Untagged video, files and live cameras alike, gets the players' guess from its size, as FFmpeg
# and mpv make it (is_hd).
_UNSPECIFIED = 2  # AVCOL_SPC / AVCOL_PRI / AVCOL_TRC unspecified (the range's is 0)


def is_hd(width: int, height: int) -> bool:
    """The size rule players use for untagged video (FFmpeg's and mpv's: BT.709 from 1280 wide or above 576 lines)."""
    return width >= 1280 or height > 576


def implied_colour(width: int, height: int, colorspace: int | None, primaries: int | None,
                   color_range: int | None) -> tuple[int, int, int]:
    """(matrix, primaries, range), FFmpeg's numbers, that a player assumes for a stream of this
    size and these tags: what is tagged stays, the rest is guessed."""
    hd = is_hd(width, height)
    if colorspace in (None, _UNSPECIFIED):
        colorspace = MATRICES["bt709" if hd else "smpte170m"]
    if primaries in (None, _UNSPECIFIED):
        primaries = PRIMARIES["bt709" if hd else ("bt470bg" if height == 576 else "smpte170m")]
    if color_range in (None, 0):
        color_range = RANGES["tv"]
    return colorspace, primaries, color_range


def colour_from_tags(colorspace: int | None, color_range: int | None, width: int, height: int, *,
                     full_range_format: bool = False, primaries: int | None = None,
                     transfer: int | None = None) -> Colour:
    """The ``Colour`` of decoded video from FFmpeg's tags; what is untagged is inferred.

    A ``yuvj*`` pixel format (``full_range_format``) or a JPEG range tag means full range,
    anything else limited. An unspecified matrix is the players' guess from the size (``is_hd``):
    BT.709 from 1280 wide or above 576 lines, BT.601 below.
    """
    rng = "pc" if full_range_format or color_range == RANGES["pc"] else "tv"
    by_value = {v: k for k, v in MATRICES.items()}
    matrix = by_value.get(colorspace or 0) or ("bt709" if is_hd(width, height) else "smpte170m")
    prim = {v: k for k, v in PRIMARIES.items()}.get(primaries or 0)
    trc = {v: k for k, v in TRANSFERS.items()}.get(transfer or 0)
    return Colour(matrix, rng, prim, trc)


def _ycbcr_to_bgr_affine(colour: Colour) -> np.ndarray:
    """The 3x4 matrix that maps [Y, Cb, Cr, 1] (8-bit codes) to [B, G, R] (0..255)."""
    kr, kb = _KR_KB[colour.matrix]
    kg = 1.0 - kr - kb
    if colour.full_range:
        ys, yo, cs = 1.0, 0.0, 1.0
    else:
        ys, yo, cs = 255.0 / 219.0, 16.0, 255.0 / 224.0
    r_cr = 2 * (1 - kr) * cs
    b_cb = 2 * (1 - kb) * cs
    g_cb = -b_cb * kb / kg
    g_cr = -r_cr * kr / kg
    rows = [  # B, G, R: each = ys * (Y - yo) + a * (Cb - 128) + b * (Cr - 128)
        (ys, b_cb, 0.0),
        (ys, g_cb, g_cr),
        (ys, 0.0, r_cr),
    ]
    return np.array([[a, b, c, -ys * yo - 128 * (b + c)] for a, b, c in rows], np.float32)


def ycbcr_to_bgr(planes: tuple[np.ndarray, np.ndarray, np.ndarray], colour: Colour | None) -> np.ndarray:
    """(Y, Cb, Cr) 8-bit planes, chroma 4:2:0 or full size, to an 8-bit BGR picture.

    ``None`` is read as BT.601 limited range (what untagged SD video is).
    """
    y, cb, cr = planes
    h, w = y.shape
    if cb.shape != y.shape:
        cb = cv2.resize(cb, (w, h), interpolation=cv2.INTER_LINEAR)
        cr = cv2.resize(cr, (w, h), interpolation=cv2.INTER_LINEAR)
    ycc = cv2.merge([y, cb, cr])
    return cv2.transform(ycc, _ycbcr_to_bgr_affine(colour or BT601_TV))


def bgr_to_ycbcr(bgr: np.ndarray, colour: Colour | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An 8-bit BGR picture to full-size (4:4:4) (Y, Cb, Cr) planes in ``colour`` (BT.601 limited by default)."""
    m = np.vstack([_ycbcr_to_bgr_affine(colour or BT601_TV), [0, 0, 0, 1]]).astype(np.float64)
    inverse = np.linalg.inv(m)[:3].astype(np.float32)
    ycc = cv2.transform(bgr, inverse)
    return ycc[..., 0].copy(), ycc[..., 1].copy(), ycc[..., 2].copy()


def bgr_to_yuv420(bgr: np.ndarray, colour: Colour | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An 8-bit BGR picture to (Y, Cb, Cr) 4:2:0 planes (odd sizes are cropped to even)."""
    h, w = bgr.shape[0] & ~1, bgr.shape[1] & ~1
    y, cb, cr = bgr_to_ycbcr(np.ascontiguousarray(bgr[:h, :w]), colour)
    half = (w // 2, h // 2)
    return y, cv2.resize(cb, half, interpolation=cv2.INTER_AREA), cv2.resize(cr, half, interpolation=cv2.INTER_AREA)


def rgb_to_yuv420_swscale(rgb: np.ndarray, colour: Colour = BT601_TV) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An 8-bit RGB (not BGR) picture of even size to (Y, Cb, Cr) 4:2:0 planes in ``colour``'s
    matrix and range, converted and subsampled by FFmpeg's swscale, as FFmpeg would encode it.

    Generated clips and codec round trips use it, so that their chroma is what a camera or an
    encoder fed with RGB makes; ``bgr_to_yuv420`` (OpenCV, area-averaged chroma) is the live
    path's conversion of webcam pictures.
    """
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    out = frame.reformat(format="yuv420p", dst_colorspace=MATRICES[colour.matrix],
                         dst_color_range=RANGES[colour.range])
    planes = []
    for plane in out.planes:
        raw = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        planes.append(raw[:, : plane.width].copy())
    return planes[0], planes[1], planes[2]


# The evaluation protocol's luma (DESIGN.md): BT.601, limited range, as MATLAB's rgb2ycbcr
# computes it. The weights are 219 * (Kr, Kg, Kb) of BT.601 (_KR_KB["smpte170m"]), written
# as the published tables' scripts write them so that every score stays bit-exact.
MATLAB_Y_OFFSET = 16.0
MATLAB_Y_WEIGHTS = (65.481, 128.553, 24.966)


def matlab_rgb2ycbcr_y(rgb: np.ndarray) -> np.ndarray:
    """Y of BT.601 limited-range YCbCr as MATLAB's ``rgb2ycbcr``, float64 in [16, 235], unrounded.

    Y = 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in [0, 1] (RGB order, not BGR). A
    ``uint8`` input is read as [0, 255], a float input as [0, 1].
    """
    arr = np.asarray(rgb)
    x = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    if x.ndim != 3 or x.shape[2] < 3:
        raise ValueError(f"expected HxWx3 RGB, got shape {arr.shape}")
    wr, wg, wb = MATLAB_Y_WEIGHTS
    return MATLAB_Y_OFFSET + wr * x[..., 0] + wg * x[..., 1] + wb * x[..., 2]
