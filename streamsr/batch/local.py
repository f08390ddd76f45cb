"""Worker processes on this machine: a ``ProcessPoolExecutor`` (spawn), one model per process.

Each process loads the model on its first task and keeps it. Progress (frames done per task)
comes back on a ``multiprocessing`` queue. Workers ignore Ctrl-C (the driver decides) and,
on Linux, receive SIGTERM when the driver dies, so a killed job leaves no worker running.
When a worker process dies, the pool breaks: every task it held comes back as a ``crash``
result (the driver retries them) and a new pool is started.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from queue import Empty
from typing import Any

from streamsr.batch.worker import Task, TaskResult, Worker
from streamsr.enhance import EnhanceOptions

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.25

_worker: Worker | None = None
_queue: Any = None


def _set_parent_death_signal() -> None:
    """Linux: SIGTERM this process when its parent dies (a driver killed with SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _init(options: EnhanceOptions, queue: Any, parent: int) -> None:
    global _worker, _queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal()
    if os.getppid() != parent:  # the driver died before the signal was armed
        os._exit(1)
    _worker = Worker(options)
    _queue = queue
    queue.cancel_join_thread()  # progress is best effort: never wait on it to exit
    queue.put(("hello", os.getpid(), ""))


def _run(task: Task) -> TaskResult:
    assert _worker is not None, "worker not initialised"
    last = [0.0]

    def on_frame(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            _queue.put(("frames", done, task.id))

    return _worker.run(task, on_frame)


class LocalRunner:
    """Runs tasks on ``workers`` local processes; see the module notes."""

    def __init__(self, options: EnhanceOptions, workers: int) -> None:
        self.options = options
        self.workers = workers
        self._ctx = mp.get_context("spawn")
        self._queue = self._ctx.Queue()
        self._futures: dict[Future, Task] = {}
        self._pids: set[int] = set()
        self._frames: dict[str, int] = {}
        self._pool = self._new_pool()

    def describe(self) -> str:
        return f"{self.workers} local worker process{'es' if self.workers != 1 else ''}"

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=self._ctx, initializer=_init,
                                   initargs=(self.options, self._queue, os.getpid()))

    @property
    def capacity(self) -> int:
        """Tasks to keep submitted: one running and one waiting per worker."""
        return 2 * self.workers

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    def submit(self, task: Task) -> None:
        self._futures[self._pool.submit(_run, task)] = task

    def poll(self, timeout: float) -> list[TaskResult]:
        if not self._futures:
            time.sleep(timeout)
            self._drain()
            return []
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        results = []
        broken = False
        for future in done:
            task = self._futures.pop(future)
            self._frames.pop(task.id, None)
            try:
                results.append(future.result())
            except BrokenProcessPool:
                broken = True
                results.append(TaskResult(task, error="its worker process died (killed or crashed)", kind="crash"))
            except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be sent back
                results.append(TaskResult(task, error=f"{type(e).__name__}: {e}", kind="crash"))
        if broken:
            results += self._restart()
        self._drain()
        return results

    def _restart(self) -> list[TaskResult]:
        """A worker died: collect what the old pool held, then start a new one."""
        log.warning("a worker process died; restarting the workers and retrying its tasks")
        results = []
        for future, task in list(self._futures.items()):
            try:
                results.append(future.result(timeout=30))
            except Exception:  # noqa: BLE001 - BrokenProcessPool, mostly
                results.append(TaskResult(task, error="its worker process died (killed or crashed)", kind="crash"))
        self._futures.clear()
        self._frames.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pids.clear()
        # a fresh progress queue: the dead process may have held the old one's lock
        self._queue.close()
        self._queue = self._ctx.Queue()
        self._pool = self._new_pool()
        return results

    def _drain(self) -> None:
        while True:
            try:
                what, value, task_id = self._queue.get_nowait()
            except (Empty, OSError, ValueError):
                return
            if what == "hello":
                self._pids.add(value)
            elif any(t.id == task_id for t in self._futures.values()):
                self._frames[task_id] = value

    def progress(self) -> dict[str, int]:
        """Frames done so far by each task in flight."""
        self._drain()
        return dict(self._frames)

    def close(self, terminate: bool = False) -> None:
        """Stop the workers: let them finish, or (``terminate``) end them now."""
        if terminate:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._drain()
            for pid in self._pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._queue.close()
        self._queue.join_thread()
