"""streamsr: real-time super-resolution for video.

The Python API (streamsr.api): ``Upscaler`` for your own OpenCV or PyAV loop, and
``enhance_video`` for whole files, as ``streamsr enhance`` does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Upscaler", "enhance_video", "__version__"]

if TYPE_CHECKING:
    from streamsr.api import Upscaler, enhance_video


def __getattr__(name: str) -> Any:  # the API loads the engines' libraries: only when asked for
    if name in ("Upscaler", "enhance_video"):
        from streamsr import api

        return getattr(api, name)
    raise AttributeError(f"module 'streamsr' has no attribute {name!r}")
