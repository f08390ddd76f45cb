"""A one-line progress bar on stderr and the end-of-run summary table."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """frames done / total, FPS and ETA, redrawn at most four times a second on a terminal."""

    def __init__(self, total: int | None, stream: TextIO = sys.stderr, label: str = "enhance") -> None:
        self.total = total
        self.stream = stream
        self.label = label
        self.enabled = stream.isatty()
        self._t0 = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        """Draw ``done`` (of ``total`` when given): an ``on_frame`` and an API ``progress`` callback."""
        if total is not None:
            self.total = total
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.25 and done != self.total):
            return
        self._last = now
        elapsed = max(now - self._t0, 1e-9)
        fps = done / elapsed
        if self.total:
            width = 30
            filled = int(width * min(done / self.total, 1.0))
            eta = (self.total - done) / fps if fps > 0 else 0.0
            line = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                    f"{fps:6.1f} fps  ETA {_clock(eta)}")
        else:
            line = f"{self.label} {done} frames {fps:6.1f} fps  {_clock(elapsed)}"
        self.stream.write("\r" + line)
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
