"""Counts frames and throws them away (benchmarks)."""
from __future__ import annotations

from streamsr.types import Frame


class NullSink:
    def __init__(self) -> None:
        self.frames = 0

    def write(self, frame: Frame) -> None:
        self.frames += 1

    def close(self, complete: bool = True) -> None:
        pass

    def abort(self) -> None:
        pass
