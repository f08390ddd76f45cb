"""One image file, decoded: the reader under both the image inputs of ``enhance``
(sources/image_source.py: planes, alpha, 16 bits) and the evaluation (evaluate.py: 8-bit RGB).

Images are decoded as stored (alpha and 16 bits kept) and then turned upright by their EXIF
orientation, alpha included, the way viewers show them. (OpenCV applies the orientation only
when it also drops alpha and depth, IMREAD_COLOR; IMREAD_UNCHANGED ignores it.)
"""
from __future__ import annotations

import logging
import struct
from pathlib import Path

import cv2
import numpy as np

from streamsr.errors import InputError

log = logging.getLogger(__name__)

_ORIENTATION_TAG = 0x0112
_EXIF = 0  # cv2.IMAGE_METADATA_EXIF


def exif_orientation(exif: bytes) -> int:
    """The Orientation (1..8) in IFD0 of a TIFF-structured EXIF block; 1 when absent or unreadable."""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None or len(exif) < 8:
        return 1
    try:
        (ifd,) = struct.unpack_from(order + "I", exif, 4)
        (count,) = struct.unpack_from(order + "H", exif, ifd)
        for i in range(count):
            tag, kind, _, value = struct.unpack_from(order + "HHI4s", exif, ifd + 2 + 12 * i)
            if tag == _ORIENTATION_TAG and kind == 3:  # SHORT, stored in the first two bytes
                (orientation,) = struct.unpack_from(order + "H", value)
                return orientation if 1 <= orientation <= 8 else 1
    except struct.error:
        return 1
    return 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an (H, W[, C]) image upright for EXIF ``orientation`` (all channels alike)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # upside down
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, -1),  # needs a quarter turn clockwise
        7: lambda a: np.rot90(a, 1)[:, ::-1],  # transversed
        8: lambda a: np.rot90(a, 1),  # needs a quarter turn anticlockwise
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(image))


def _decode(data: np.ndarray) -> tuple[np.ndarray | None, int]:
    """The image as stored and its EXIF orientation."""
    if not hasattr(cv2, "imdecodeWithMetadata"):  # OpenCV before 4.12: find a JPEG-style Exif block
        head = data[: 1 << 16].tobytes()
        at = head.find(b"Exif\x00\x00")
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED), exif_orientation(head[at:]) if at >= 0 else 1
    image, kinds, blocks = cv2.imdecodeWithMetadata(data, cv2.IMREAD_UNCHANGED)
    orientation = 1
    for kind, block in zip(kinds if kinds is not None else [], blocks if blocks is not None else []):
        if int(kind) == _EXIF and block is not None:
            orientation = exif_orientation(np.asarray(block, dtype=np.uint8).tobytes())
    return (image if image is not None and image.size else None), orientation


def read_image_file(path: Path, upright: bool = True) -> np.ndarray:
    """The image in ``path`` as stored: (H, W) grey or (H, W, 3 or 4) BGR(A), of the file's
    sample type; turned upright by its EXIF orientation unless ``upright`` is False.

    InputError for an empty or undecodable file; OSError when the file cannot be opened.
    """
    if path.stat().st_size == 0:
        raise InputError(f"image is empty (0 bytes): {path}")
    image, orientation = _decode(np.fromfile(path, dtype=np.uint8))
    if image is None:
        raise InputError(f"cannot read {path} as an image")
    if upright and orientation != 1:
        log.debug("%s: EXIF orientation %d applied", path.name, orientation)
        image = apply_orientation(image, orientation)
    return image


def to_8bit(image: np.ndarray) -> np.ndarray:
    """Samples of any type scaled to ``uint8`` (16-bit code 65535 and float 1.0 are 255), rounded."""
    if image.dtype == np.uint8:
        return image
    peak = np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0
    return (np.clip(image.astype(np.float32), 0, peak) * (255.0 / peak) + 0.5).astype(np.uint8)
