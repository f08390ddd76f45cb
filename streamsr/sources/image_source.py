"""Still images: one file or every image in a folder, as full-range BT.601 planes."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from streamsr.colour import bgr_to_planes, gray_to_planes
from streamsr.errors import InputError
from streamsr.types import Frame

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def is_image_input(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES


def list_images(path: Path) -> list[Path]:
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
    return files


def read_image(path: Path) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray | None]:
    """Planes and alpha (or None) of an image file, converted to 8 bits."""
    if path.stat().st_size == 0:
        raise InputError(f"image is empty (0 bytes): {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"cannot read {path} as an image")
    if image.dtype != np.uint8:
        image = (image.astype(np.float32) * (255.0 / np.iinfo(image.dtype).max) + 0.5).astype(np.uint8)
    if image.ndim == 2:
        return gray_to_planes(image), None
    alpha = image[..., 3].copy() if image.shape[2] == 4 else None
    return bgr_to_planes(np.ascontiguousarray(image[..., :3])), alpha


class ImageSource:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.files = list_images(self.path)

    def __iter__(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            planes, alpha = read_image(file)
            yield Frame(index=index, planes=planes, name=file.name, alpha=alpha)

    def close(self) -> None:
        pass
