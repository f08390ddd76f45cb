"""An OpenCV window per camera: ``q`` (or Esc) quits, ``c`` toggles side-by-side with bicubic.

The window needs the GUI build of OpenCV (``pip install 'streamsr[gui]'``, which brings
``opencv-python`` instead of ``opencv-python-headless``). HighGUI wants one thread, so the
pipeline's output threads only hand over frames and ``show()`` runs on the main thread.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

from streamsr.colour import upscale_planes_classic, ycbcr_to_bgr
from streamsr.errors import ConfigError
from streamsr.types import Frame

GUI_MISSING = ("--display needs the GUI build of OpenCV, and this one is headless. Install it with "
               "`pip install 'streamsr[gui]'` (or `pip uninstall opencv-python-headless && pip install opencv-python`), "
               "or watch in a browser with --serve 127.0.0.1:8080")


def gui_available() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "")
    return False


class DisplayWindow:
    """A LiveOutput plus a ``show()`` loop step for the main thread."""

    label = "display"

    def __init__(self, cameras: list[str], scale: int) -> None:
        if not gui_available():
            raise ConfigError(GUI_MISSING)
        self.scale = scale
        self.compare = False
        self._latest: dict[str, Frame | None] = dict.fromkeys(cameras)
        self._shown: dict[str, int] = {}
        self._lock = threading.Lock()

    def write(self, camera: str, frame: Frame) -> None:
        with self._lock:
            self._latest[camera] = frame

    def picture(self, frame: Frame) -> np.ndarray:
        model = ycbcr_to_bgr(frame.planes, frame.colour)
        if not self.compare or frame.source_planes is None:
            return model
        bicubic_planes = upscale_planes_classic(frame.source_planes, self.scale, cv2.INTER_CUBIC)
        bicubic = ycbcr_to_bgr(bicubic_planes, frame.colour)
        h = min(model.shape[0], bicubic.shape[0])
        pic = np.hstack([bicubic[:h], model[:h]])
        for text, x in (("bicubic", 10), ("model", bicubic.shape[1] + 10)):
            cv2.putText(pic, text, (x, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(pic, text, (x, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 1, cv2.LINE_AA)
        return pic

    def show(self, wait_ms: int = 10) -> bool:
        """Show the newest frames; False when the user asked to quit."""
        with self._lock:
            latest = dict(self._latest)
        for name, frame in latest.items():
            if frame is not None and self._shown.get(name) != frame.index:
                cv2.imshow(f"streamsr {name}", self.picture(frame))
                self._shown[name] = frame.index
        key = cv2.waitKey(wait_ms) & 0xFF
        if key in (ord("q"), 27):
            return False
        if key == ord("c"):
            self.compare = not self.compare
        return True

    def close(self) -> None:
        try:
            cv2.destroyAllWindows()
        except cv2.error:
            pass
