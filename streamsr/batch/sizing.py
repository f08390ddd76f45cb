"""How many workers, and how many threads each, when the user does not say.

The rule (README, "Archives"):

- a GPU engine (``cuda``, ``tensorrt``, or ``auto`` where a GPU is seen): one worker per GPU;
- a CPU engine: one worker per 4 cores, at least one;
- never more workers than tasks;
- threads per worker: ``--threads`` if given, else the cores divided by the workers.

Four cores per worker because a worker is three stages at once (decode, inference, x264
encode, each threaded): fewer, fatter workers waste less on the small models, and more
workers overlap one file's decode and encode with another's inference.
"""
from __future__ import annotations

from pathlib import Path

from streamsr.backends import cuda_visible

GPU_ENGINES = ("cuda", "tensorrt")
CORES_PER_WORKER = 4


def needs_gpu(engine: str, gpu_seen: bool) -> bool:
    return engine in GPU_ENGINES or (engine == "auto" and gpu_seen)


def local_gpu() -> bool:
    """Whether this machine has a CUDA GPU that torch sees. On Linux without an NVIDIA device
    node the answer is no without importing torch (seconds, on a small machine)."""
    if Path("/dev").is_dir() and not any(Path("/dev").glob("nvidia[0-9]*")):
        return False
    return cuda_visible()


def default_workers(cores: int, gpus: int, gpu_engine: bool, tasks: int | None = None) -> int:
    workers = max(1, gpus) if gpu_engine else max(1, cores // CORES_PER_WORKER)
    if tasks is not None:
        workers = min(workers, max(1, tasks))
    return workers


def threads_per_worker(cores: int, workers: int, asked: int | None) -> int:
    return asked if asked else max(1, cores // max(1, workers))
