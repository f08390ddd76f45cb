"""streamsr: real-time super-resolution for video."""
from __future__ import annotations

__version__ = "0.1.0"
