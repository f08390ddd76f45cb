"""Archives: many files and long files, resumable, on this machine or on a Ray cluster.

    from streamsr.batch import BatchOptions, discover, run_batch
    items = discover(["/archive/cam1", "/archive/cam2"], Path("out"))
    report = run_batch(items, Path("out"), BatchOptions(workers=2))

Modules: discover (inputs and output paths), journal (resume), segments (long files cut at
keyframes and joined), worker (one model, many tasks), local (worker processes), ray_runner
(Ray actors), job (the driver), command (the CLI).
"""
from __future__ import annotations

from streamsr.batch.discover import Item, discover
from streamsr.batch.job import run_batch
from streamsr.batch.report import BatchOptions, BatchReport, FileReport

__all__ = ["BatchOptions", "BatchReport", "FileReport", "Item", "discover", "run_batch"]
