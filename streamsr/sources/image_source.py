"""Still images: one file or every image in a folder tree, as full-range BT.601 planes.

A folder is walked with its sub-folders; each image's name relative to the folder (``a/b.png``)
is its name in the output folder, so the tree is mirrored. Symbolic links to folders are not
followed (they are listed in ``notes``). An image that cannot be read does not stop the job:
it is recorded in ``failures`` (name and reason) and the others are processed.

Images are decoded as stored (alpha and 16 bits kept) and then turned upright by their EXIF
orientation, alpha included, the way viewers show them; the outputs carry no orientation
tag, so they are upright everywhere. (OpenCV applies the orientation only when it also
drops alpha and depth, IMREAD_COLOR; IMREAD_UNCHANGED ignores it.)
"""
from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from streamsr.colour import bgr_to_planes, gray_to_planes
from streamsr.errors import InputError
from streamsr.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
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


def is_image_input(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES


def list_images(path: Path, exclude: Path | None = None, notes: list[str] | None = None) -> list[Path]:
    """The image files of ``path`` (itself, or its tree without ``exclude``), in name order.

    Folders that are symbolic links are not entered; each is added to ``notes``.
    """
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_file():
        return [path]
    skip = exclude.resolve() if exclude is not None else None
    files = []
    for folder, dirs, names in os.walk(path):
        here = Path(folder)
        for d in list(dirs):
            sub = here / d
            if sub.is_symlink() or (skip is not None and sub.resolve() == skip):
                dirs.remove(d)
                if sub.is_symlink() and notes is not None:
                    notes.append(f"{sub} is a link to a folder: not followed")
        dirs.sort()
        files += [here / n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES and not _temporary(n)]
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
    return sorted(files, key=lambda f: f.relative_to(path).parts)


def _temporary(name: str) -> bool:
    """streamsr's own temporary files (a run in progress or a killed one) are not inputs."""
    return name.startswith(".") and ".partial." in name


def read_image(path: Path, max_bits: int = 16) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray | None]:
    """Planes and alpha (or None) of an image file: uint16 for 16-bit files (PNG, TIFF) unless
    ``max_bits`` is 8, uint8 otherwise (other sample types are converted to 8 bits)."""
    if path.stat().st_size == 0:
        raise InputError(f"image is empty (0 bytes): {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image, orientation = _decode(data)
    if image is None:
        raise InputError(f"cannot read {path} as an image")
    if orientation != 1:
        log.debug("%s: EXIF orientation %d applied", path.name, orientation)
        image = apply_orientation(image, orientation)
    if image.dtype != np.uint8 and not (image.dtype == np.uint16 and max_bits > 8):
        peak = np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0
        image = (np.clip(image.astype(np.float32), 0, peak) * (255.0 / peak) + 0.5).astype(np.uint8)
    if image.ndim == 2:
        return gray_to_planes(image), None
    alpha = image[..., 3].copy() if image.shape[2] == 4 else None
    return bgr_to_planes(np.ascontiguousarray(image[..., :3])), alpha


class ImageSource:
    """Frames named by their path relative to the input folder; unreadable images are skipped
    and recorded in ``failures`` as (name, reason). ``max_bits=8`` reads 16-bit files as 8-bit
    (for engines that move uint8 planes only)."""

    def __init__(self, path: str | Path, exclude: Path | None = None, max_bits: int = 16) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        self.files = list_images(self.path, exclude, self.notes)
        self.failures: list[tuple[str, str]] = []
        self.max_bits = max_bits

    def name(self, file: Path) -> str:
        return file.name if self.path.is_file() else file.relative_to(self.path).as_posix()

    def __iter__(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            try:
                planes, alpha = read_image(file, self.max_bits)
            except (InputError, OSError, cv2.error) as e:
                reason = str(e) if isinstance(e, InputError) else f"cannot read {file}: {e.strerror or e}"
                log.debug("skipped %s: %s", file, reason)
                self.failures.append((self.name(file), reason))
                continue
            bits = 16 if planes[0].dtype == np.uint16 else 8
            yield Frame(index=index, planes=planes, name=self.name(file), alpha=alpha, bit_depth=bits, full_range=True)

    def close(self) -> None:
        pass
