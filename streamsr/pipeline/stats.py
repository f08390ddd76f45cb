"""What a run measured: frames, wall time and the busy time of each stage."""
from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class StageClock:
    """Accumulates the time a stage spends working (not waiting on its queues)."""

    busy_s: float = 0.0
    items: int = 0

    def timed(self):
        return _Timed(self)


class _Timed:
    def __init__(self, clock: StageClock) -> None:
        self.clock = clock

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.clock.busy_s += time.perf_counter() - self.t0


@dataclass
class RunStats:
    frames: int
    wall_s: float
    stage_ms_per_frame: dict[str, float] = field(default_factory=dict)
    batches: int = 0
    dropped: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "wall_s": round(self.wall_s, 4),
            "fps": round(self.fps, 3),
            "stage_ms_per_frame": {k: round(v, 3) for k, v in self.stage_ms_per_frame.items()},
            "batches": self.batches,
            "dropped": self.dropped,
        }
