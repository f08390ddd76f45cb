"""Is the input clean, or compressed enough that its blocking and ringing matter?

The default model follows the answer (streamsr.zoo.default_model): the compressed-input model
undoes coding artefacts but gives up clean detail, so PNG snapshots or a high-bitrate file are
better served by the model that is best on clean input. A JPEG's quality is read from its
luminance quantisation table, an H.264 stream's from its decoded quantisers
(streamsr.codec_qp); neither needs the picture.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

InputKind = Literal["clean", "compressed"]

LOSSLESS_SUFFIXES = {".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}
JPEG_SUFFIXES = {".jpg", ".jpeg"}
# At JPEG quality 88 `repsr` and `repsr_cctv` are within 0.08 dB on Set14 at x2, x3 and x4; from
# 90 the clean model wins at every scale (MODELS.md, "The default for images").
CLEAN_JPEG_QUALITY = 90

# Below these mean H.264 QPs (per scale) `repsr` beats `repsr_cctv` on clips of Set14 and Set5
# LR crops; near them the two are within about 0.15 dB (MODELS.md, "The default for video").
CLEAN_H264_QP = {2: 25.0, 3: 26.0, 4: 27.0}

# ITU-T T.81 Annex K.1: the luminance table that libjpeg scales by the quality setting.
_BASE_LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
])


def _libjpeg_table(quality: int) -> np.ndarray:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_BASE_LUMA_TABLE * scale + 50) // 100, 1, 255)


# Sorted, so that a file's table (stored in zig-zag order) compares without reordering.
_SORTED_TABLES = np.stack([np.sort(_libjpeg_table(q)) for q in range(1, 101)])


def jpeg_quality(path: Path) -> int | None:
    """The libjpeg quality (1-100) whose luminance table is nearest this file's, or None when
    the file has no readable table. Exact for files written by libjpeg (OpenCV, Pillow, FFmpeg);
    an estimate for cameras with tables of their own."""
    table = _luma_table(path)
    if table is None:
        return None
    distance = np.abs(_SORTED_TABLES - np.sort(table)).sum(axis=1)
    return int(np.argmin(distance)) + 1


def _luma_table(path: Path) -> np.ndarray | None:
    """Quantisation table 0 from the DQT segments before the scan, or None."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                return None
            while True:
                marker = f.read(2)
                if len(marker) < 2 or marker[0] != 0xFF or marker[1] in (0xDA, 0xD9):  # start of scan / end
                    return None
                length_bytes = f.read(2)
                if len(length_bytes) < 2:
                    return None
                segment = f.read(int.from_bytes(length_bytes, "big") - 2)
                if marker[1] == 0xDB and (table := _table_zero(segment)) is not None:
                    return table
    except OSError:
        return None


def _table_zero(segment: bytes) -> np.ndarray | None:
    pos = 0
    while pos < len(segment):
        precision, table_id = segment[pos] >> 4, segment[pos] & 0x0F
        size = 128 if precision else 64
        values = segment[pos + 1:pos + 1 + size]
        if len(values) < size:
            return None
        if table_id == 0:
            return np.frombuffer(values, dtype=">u2" if precision else np.uint8).astype(np.int64)
        pos += 1 + size
    return None


def webp_is_lossless(path: Path) -> bool:
    """True when the WebP file's image chunk is VP8L (lossless), False for VP8 or unreadable."""
    try:
        with open(path, "rb") as f:
            header = f.read(12)
            if header[:4] != b"RIFF" or header[8:12] != b"WEBP":
                return False
            while chunk := f.read(8):
                if len(chunk) < 8:
                    return False
                fourcc, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if fourcc in (b"VP8L", b"VP8 "):
                    return fourcc == b"VP8L"
                f.seek(size + (size & 1), 1)
    except OSError:
        pass
    return False


def kind_of_image(path: Path) -> InputKind:
    """``clean`` for lossless formats and JPEGs of quality >= CLEAN_JPEG_QUALITY, else ``compressed``
    (also for anything that cannot be told: the compressed-input model is the safer default)."""
    suffix = path.suffix.lower()
    if suffix in LOSSLESS_SUFFIXES:
        return "clean"
    if suffix in JPEG_SUFFIXES:
        quality = jpeg_quality(path)
        return "clean" if quality is not None and quality >= CLEAN_JPEG_QUALITY else "compressed"
    if suffix == ".webp" and webp_is_lossless(path):
        return "clean"
    return "compressed"


def video_kind(mean_qp: float | None, scale: int) -> InputKind:
    """``clean`` for an H.264 stream whose mean QP is below the scale's CLEAN_H264_QP, else
    ``compressed`` (also when the QP cannot be read: HEVC and other codecs export none)."""
    threshold = CLEAN_H264_QP.get(scale, min(CLEAN_H264_QP.values()))
    return "clean" if mean_qp is not None and mean_qp < threshold else "compressed"


KIND_MEANING = {
    "clean": f"lossless, or JPEG of quality {CLEAN_JPEG_QUALITY} or more",
    "compressed": f"JPEG below quality {CLEAN_JPEG_QUALITY}, or lossy WebP",
}


def images_kind(paths: Iterable[Path]) -> InputKind:
    """The kind most of the images are (one model serves a run); a tie is ``compressed``."""
    kinds = [kind_of_image(p) for p in paths]
    return "clean" if kinds and kinds.count("clean") > len(kinds) / 2 else "compressed"
