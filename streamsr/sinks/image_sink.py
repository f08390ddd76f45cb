"""Upscaled images into a folder, under their input file names, each written atomically."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from streamsr.colour import planes_to_bgr
from streamsr.errors import OutputError
from streamsr.sinks.atomic import commit, discard, temporary_path
from streamsr.types import Frame

log = logging.getLogger(__name__)


# JPEG outputs keep full chroma (OpenCV's default is 4:2:0, which halves the colour resolution
# that the model's output was made with and smears the colours of small details and tiny images).
_WRITE_PARAMS = {
    ".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444],
}
_WRITE_PARAMS[".jpeg"] = _WRITE_PARAMS[".jpg"]
SIXTEEN_BIT_SUFFIXES = {".png", ".tif", ".tiff"}


def to_8bit(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return ((image.astype(np.float32) * (255.0 / 65535.0)) + 0.5).astype(np.uint8)


def encode_image(frame: Frame, suffix: str) -> bytes:
    bgr = planes_to_bgr(frame.planes)
    if frame.alpha is not None:
        h, w = bgr.shape[:2]
        alpha = cv2.resize(frame.alpha, (w, h), interpolation=cv2.INTER_CUBIC)
        bgr = np.dstack([bgr, alpha.astype(bgr.dtype) if alpha.dtype == bgr.dtype else _as_depth(alpha, bgr.dtype)])
    if bgr.dtype != np.uint8 and suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
        log.warning("%s holds 8 bits per sample: a 16-bit image is written as 8-bit (use .png or .tif to keep "
                    "16 bits)", suffix)
        bgr = to_8bit(bgr)
    ok, data = cv2.imencode(suffix, bgr, _WRITE_PARAMS.get(suffix.lower(), []))
    if not ok:
        raise OutputError(f"cannot encode an image as {suffix}")
    return data.tobytes()


def _as_depth(plane: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return to_8bit(plane)
    return plane.astype(np.uint16) * 257


class ImageFolderSink:
    """Writes ``frame.name`` into ``folder``; with a single image, ``target`` may name the file."""

    def __init__(self, folder: Path, target: Path | None = None, overwrite: bool = True) -> None:
        self.folder = folder
        self.target = target
        self.overwrite = overwrite
        self.frames = 0

    def write(self, frame: Frame) -> None:
        """``frame.name`` may hold sub-folders (``a/b.png``): they are made as needed."""
        path = self.target or (self.folder / (frame.name or f"{frame.index:06d}.png"))
        if path.parent != self.folder:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create the output folder {path.parent}: {e.strerror or e}") from None
        temp = temporary_path(path)
        try:
            temp.write_bytes(encode_image(frame, path.suffix or ".png"))
            commit(temp, path, overwrite=self.overwrite)
        except BaseException:
            discard(temp)
            raise
        self.frames += 1

    def close(self, complete: bool = True) -> None:
        pass

    def abort(self) -> None:
        pass
