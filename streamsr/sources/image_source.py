"""Still images: one file or every image in a folder tree, as full-range BT.601 planes.

A folder is walked with its sub-folders; each image's name relative to the folder (``a/b.png``)
is its name in the output folder, so the tree is mirrored. Symbolic links to folders are not
followed (they are listed in ``notes``). An image that cannot be read does not stop the job:
it is recorded in ``failures`` (name and reason) and the others are processed.

Images are read upright (their EXIF orientation applied, alpha included, by
sources/image_file.py), alpha and 16 bits kept; the outputs carry no orientation tag, so they
are upright everywhere.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from streamsr.colour import bgr_to_planes, gray_to_planes
from streamsr.errors import InputError
from streamsr.sources.image_file import read_image_file, to_8bit
from streamsr.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


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
    """Planes and alpha (or None) of an image file, upright: uint16 for 16-bit files (PNG, TIFF)
    unless ``max_bits`` is 8, uint8 otherwise (other sample types are converted to 8 bits)."""
    image = read_image_file(path)
    if not (image.dtype == np.uint16 and max_bits > 8):
        image = to_8bit(image)
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
