"""The same job on a Ray cluster: one actor per worker, each loading the model once.

``--ray`` starts a local Ray instance; ``--ray auto`` attaches to the running cluster (as
``ray start`` left it); ``--ray ADDRESS`` to that one. An actor asks for one GPU when the
engine runs on a GPU, otherwise for as many CPUs as it runs inference threads.

Ray restarts a dead actor (``max_restarts``) and re-runs the call it held
(``max_task_retries``). When that is used up (or the node is gone), the call fails with
RayActorError; the driver then counts a ``crash`` for the task, resubmits it, and the dead
actor is replaced by a new one.

Workers read inputs and write outputs by path: every node must see the inputs and OUTDIR at
the same paths (a shared file system). The journal and the join stay with the driver.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
from dataclasses import replace
from typing import Any

from streamsr.backends.base import default_threads
from streamsr.batch import sizing
from streamsr.batch.worker import Task, TaskResult, Worker
from streamsr.enhance import EnhanceOptions
from streamsr.errors import ConfigError, PipelineError

log = logging.getLogger(__name__)

MAX_RESTARTS = 2
MAX_TASK_RETRIES = 2
PROGRESS_EVERY_S = 1.0


def import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError("--ray needs Ray, an optional extra: pip install 'streamsr[ray]'") from None


class RayWorker:
    """The actor: a Worker and the progress of the task it runs (read by ``progress``)."""

    def __init__(self, options: EnhanceOptions) -> None:
        self.worker = Worker(options)
        self.current: tuple[str, int] = ("", 0)

    def run(self, task: Task) -> TaskResult:
        self.current = (task.id, 0)

        def on_frame(done: int) -> None:
            self.current = (task.id, done)

        try:
            return self.worker.run(task, on_frame)
        finally:
            self.current = ("", 0)

    def progress(self) -> tuple[str, int]:
        return self.current

    def pid(self) -> int:
        return os.getpid()


class RayRunner:
    def __init__(self, options: EnhanceOptions, address: str | None, workers: int | None, tasks: int | None) -> None:
        self.ray = ray = import_ray()
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                          logging_level=logging.WARNING, configure_logging=False)
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:  # the cores this process may use, as the local workers count them
                    ray.init(num_cpus=default_threads(), **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(f"cannot reach the Ray cluster at {address or 'a new local instance'}: "
                                  f"{str(e).splitlines()[0]}") from None
            self._started = True
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        nodes = [float(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [float(cpus)]
        gpu = sizing.needs_gpu(options.engine, gpus > 0)
        if gpu and gpus == 0:
            raise ConfigError(f"--engine {options.engine} needs a GPU and the Ray cluster has none")
        self.workers = workers or sizing.default_workers(cpus, gpus, gpu, tasks)
        threads = min(sizing.threads_per_worker(cpus, self.workers, options.threads), max(1, int(max(nodes))))
        self.options = replace(options, threads=threads)
        reserve = _cpus_per_actor(nodes, self.workers, threads)
        if gpu and self.workers > gpus:
            raise ConfigError(f"{self.workers} workers on a GPU engine need {self.workers} GPUs; "
                              f"the Ray cluster has {gpus}")
        self._actor_options: dict[str, Any] = dict(
            num_cpus=min(1.0, cpus / self.workers) if gpu else reserve, num_gpus=1 if gpu else 0,
            max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES, max_concurrency=2,
        )
        self._cls = ray.remote(RayWorker)
        self._tag = f"streamsr-batch-{os.getpid()}-{int(time.time())}"
        self._generation = 0
        self._replacements = 3 * self.workers
        self._actors: list[Any] = [self._new_actor(i) for i in range(self.workers)]
        self._busy: dict[int, tuple[Any, Task]] = {}  # slot -> (object ref, task)
        self._frames: dict[str, int] = {}
        self._last_progress = 0.0
        self.cluster = f"{cpus} CPUs, {gpus} GPUs on {len([n for n in ray.nodes() if n.get('Alive')])} node(s)"

    def describe(self) -> str:
        what = "1 GPU" if self._actor_options["num_gpus"] else f"{self._actor_options['num_cpus']:g} CPUs"
        return f"{self.workers} Ray actors ({what} each; cluster: {self.cluster})"

    def _new_actor(self, slot: int) -> Any:
        self._generation += 1
        name = f"{self._tag}-{slot}-{self._generation}"
        return self._cls.options(name=name, **self._actor_options).remote(self.options)

    @property
    def capacity(self) -> int:
        return len(self._actors)

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    def submit(self, task: Task) -> None:
        slot = next(i for i in range(len(self._actors)) if i not in self._busy)
        self._busy[slot] = (self._actors[slot].run.remote(task), task)

    def poll(self, timeout: float) -> list[TaskResult]:
        if not self._busy:
            time.sleep(timeout)
            return []
        refs = {ref: slot for slot, (ref, _) in self._busy.items()}
        ready, _ = self.ray.wait(list(refs), num_returns=1, timeout=timeout)
        results = []
        for ref in ready:
            slot = refs[ref]
            _, task = self._busy.pop(slot)
            self._frames.pop(task.id, None)
            try:
                results.append(self.ray.get(ref))
            except self.ray.exceptions.RayActorError as e:
                log.warning("the Ray actor running %s died (%s); resubmitting", task.key, _first_line(e))
                results.append(TaskResult(task, error="its Ray actor died", kind="crash"))
                self._replace(slot)
            except self.ray.exceptions.RayError as e:
                results.append(TaskResult(task, error=f"Ray: {_first_line(e)}", kind="crash"))
        return results

    def _replace(self, slot: int) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(self._actors[slot], no_restart=True)
        if self._replacements <= 0:
            raise PipelineError("Ray workers keep dying; stopping the job (see the Ray logs)")
        self._replacements -= 1
        self._actors[slot] = self._new_actor(slot)

    def progress(self) -> dict[str, int]:
        now = time.monotonic()
        if self._busy and now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            refs = [self._actors[slot].progress.remote() for slot in self._busy]
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0.5)
            running = {task.id for _, task in self._busy.values()}
            for ref in ready:
                with contextlib.suppress(Exception):
                    task_id, frames = self.ray.get(ref)
                    if task_id in running:
                        self._frames[task_id] = frames
        return dict(self._frames)

    def close(self, terminate: bool = False) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        self._actors = []
        if self._started:
            self.ray.shutdown()


def _cpus_per_actor(nodes: list[float], workers: int, threads: int) -> float:
    """The CPUs each actor reserves: its threads, or less, so that all ``workers`` actors fit
    on the nodes at once (an actor that does not fit would wait for ever)."""
    for reserve in range(threads, 0, -1):
        if sum(int(n // reserve) for n in nodes) >= workers:
            return float(reserve)
    share = min(n / max(1, workers) for n in nodes if n > 0) if any(nodes) else 1.0
    while sum(int(n // share) for n in nodes) < workers:
        share /= 2
    return share


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
