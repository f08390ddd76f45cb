"""What a batch worker does: load the model once, then enhance files and segments of files.

The same ``Worker`` runs in a local worker process (batch/local.py) and in a Ray actor
(batch/ray_runner.py). A task names its input, the temporary output to write in the job's
work folder and, for a segment, the frames to decode. Errors come back in the result, not as
exceptions, with a kind that tells the driver what to do:

  input  the file is bad (StreamSRError about this file): reported, not retried
  split  a segment did not decode to its planned frames: the file is redone whole
  job    the model or engine cannot be loaded at all: the job stops
  crash  anything else (a bug, a dying library): retried
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Literal

from streamsr.backends.base import Backend
from streamsr.enhance import EnhanceOptions, default_for_video, enhance, open_backend
from streamsr.errors import BackendUnavailable, ModelError, StreamSRError
from streamsr.batch.journal import sha256_file
from streamsr.batch.segments import SegmentSpec, SpanSource, SplitError

log = logging.getLogger(__name__)

ErrorKind = Literal["input", "split", "job", "crash"]
JOB_ERRORS = (ModelError, BackendUnavailable)


@dataclass(frozen=True)
class Task:
    """One unit of work: a whole file (``segment`` None) or one segment of it."""

    id: str  # unique per attempt: key, segment and attempt
    key: str  # the file's journal key (its output path relative to OUTDIR)
    src: Path
    output: Path  # temporary output in the work folder, moved into place by the driver
    segment: SegmentSpec | None = None
    attempt: int = 1
    hash_input: bool = True  # whole files: hash the input for the journal


@dataclass(frozen=True)
class TaskResult:
    task: Task
    frames: int = 0
    seconds: float = 0.0
    sha256: str | None = None
    engine: str = ""
    error: str | None = None
    kind: ErrorKind | None = None
    worker: str = ""  # host:pid, for the report
    model: str = ""  # the model this file got, when the job names none (the input-aware default)
    model_rule: str = ""  # and why

    @property
    def ok(self) -> bool:
        return self.error is None


class Worker:
    """Enhances tasks with the job's model or, when the job names none, with the default that
    ``enhance`` gives the file (clean or compressed, from the file's first frames, so every
    segment of a file gets the same); each backend is opened on first use and kept."""

    def __init__(self, options: EnhanceOptions) -> None:
        self.options = options
        self._backends: dict[str | None, Backend] = {}
        self.name = f"{os.uname().nodename}:{os.getpid()}"

    def backend(self, model: str | None = None) -> Backend:
        if model not in self._backends:
            self._backends[model] = open_backend(replace(self.options, model=model) if model else self.options)
            log.debug("worker %s loaded %s", self.name, self._backends[model].describe())
        return self._backends[model]

    def run(self, task: Task, on_frame: Callable[[int], None] | None = None) -> TaskResult:
        t0 = time.perf_counter()
        try:
            task.output.unlink(missing_ok=True)  # an earlier attempt's (complete or not)
            digest = sha256_file(task.src) if task.hash_input and task.segment is None else None
            options, model_rule = self.options, ""
            if options.model is None:
                model, model_rule = default_for_video(task.src, options.scale)
                options = replace(options, model=model)
            backend = self.backend(options.model)
            open_source = None if task.segment is None else partial(
                SpanSource, spec=task.segment, on_decode_error=self.options.on_decode_error,
                deinterlace=self.options.deinterlace)
            result = enhance(task.src, task.output, options, on_frame, backend=backend,
                             open_source=open_source, copy_streams=task.segment is None)
            if result.interrupted:
                task.output.unlink(missing_ok=True)
                return self._failed(task, t0, "interrupted", "crash")
            return TaskResult(task, result.stats.frames, time.perf_counter() - t0, digest, result.backend,
                              worker=self.name, model=options.model if model_rule else "", model_rule=model_rule)
        except SplitError as e:
            return self._failed(task, t0, str(e), "split")
        except JOB_ERRORS as e:
            return self._failed(task, t0, str(e), "job")
        except StreamSRError as e:
            return self._failed(task, t0, str(e), "input")
        except OSError as e:
            return self._failed(task, t0, f"{task.src}: {e.strerror or e}", "input")
        except Exception as e:  # noqa: BLE001 - reported and retried by the driver
            log.debug("task %s failed", task.id, exc_info=True)
            return self._failed(task, t0, f"{type(e).__name__}: {e}", "crash")

    def _failed(self, task: Task, t0: float, error: str, kind: ErrorKind) -> TaskResult:
        task.output.unlink(missing_ok=True)
        return TaskResult(task, seconds=time.perf_counter() - t0, error=error, kind=kind, worker=self.name)

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
