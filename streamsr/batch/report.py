"""What a batch job is asked to do and what it reports: options, per-file and job reports, and
the interface of its runners (local processes or Ray actors)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol

from streamsr.batch.worker import Task, TaskResult
from streamsr.enhance import EnhanceOptions

Status = Literal["done", "skipped", "failed", "interrupted"]


@dataclass(frozen=True)
class BatchOptions:
    enhance: EnhanceOptions = EnhanceOptions()
    workers: int | None = None  # None: sizing.default_workers
    ray: str | None = None  # None: local processes; "local": a new local Ray; "auto" or an address
    force: bool = False  # redo files the journal says are done, replace outputs it does not know
    split_over_s: float = 600.0  # files longer than this are cut into segments (0: never)
    segment_s: float = 300.0  # about this long each
    retries: int = 2  # more attempts for a task whose worker died or that crashed


@dataclass
class FileReport:
    key: str
    src: Path
    status: Status
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    segments: int = 0
    retries: int = 0  # tasks run again after a worker died or crashed
    note: str = ""
    model: str = ""  # the model the input chose, when the job named none
    model_rule: str = ""  # and why

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BatchReport:
    outdir: Path
    files: list[FileReport]
    wall_s: float
    runner: str = ""
    engine: str = ""
    interrupted: bool = False

    def count(self, status: Status) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.files if f.status == "done")

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"outdir": str(self.outdir), "wall_s": round(self.wall_s, 3), "frames": self.frames,
                "fps": round(self.fps, 3), "runner": self.runner, "engine": self.engine,
                "interrupted": self.interrupted,
                "files": [{**asdict(f), "src": str(f.src), "fps": round(f.fps, 3)} for f in self.files]}


class Runner(Protocol):
    capacity: int
    in_flight: int

    def describe(self) -> str: ...
    def submit(self, task: Task) -> None: ...
    def poll(self, timeout: float) -> list[TaskResult]: ...
    def progress(self) -> dict[str, int]: ...
    def close(self, terminate: bool = False) -> None: ...
