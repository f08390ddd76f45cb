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


def encode_image(frame: Frame, suffix: str) -> bytes:
    bgr = planes_to_bgr(frame.planes)
    if frame.alpha is not None:
        h, w = bgr.shape[:2]
        alpha = cv2.resize(frame.alpha, (w, h), interpolation=cv2.INTER_CUBIC)
        bgr = np.dstack([bgr, alpha])
    ok, data = cv2.imencode(suffix, bgr)
    if not ok:
        raise OutputError(f"cannot encode an image as {suffix}")
    return data.tobytes()


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
