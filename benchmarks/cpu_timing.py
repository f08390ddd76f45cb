"""Timing of ONNX files on the CPU engines, for the benchmarks that compare files.

Each file's runner is warmed up (3 runs), then the files are timed in turn, round after round,
and each keeps its best round's mean: interleaving spreads this VM's slow spells over all files
instead of landing on one. Pause any training first."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

Runner = Callable[[], object]


def onnxruntime_runner(path: Path, x: np.ndarray, threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = threads, 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"lr": x})


def openvino_runner(path: Path, x: np.ndarray, threads: int) -> Runner:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda: request.infer({0: x})


def interleaved_ms(runners: dict[str, Runner], rounds: int = 7, runs: int = 10) -> dict[str, float]:
    """Milliseconds per run of each runner: the best of ``rounds`` rounds of ``runs`` runs."""
    for run in runners.values():
        for _ in range(3):
            run()
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(rounds):
        for key, run in runners.items():
            start = time.perf_counter()
            for _ in range(runs):
                run()
            best[key] = min(best[key], (time.perf_counter() - start) / runs)
    return {key: seconds * 1000 for key, seconds in best.items()}


def engine_ms(files: dict[str, Path], x: np.ndarray, threads: int) -> dict[str, dict[str, float]]:
    """{label: {"onnxruntime_ms": .., "openvino_ms": ..}} for each file, interleaved per engine."""
    ort_ms = interleaved_ms({k: onnxruntime_runner(p, x, threads) for k, p in files.items()})
    ov_ms = interleaved_ms({k: openvino_runner(p, x, threads) for k, p in files.items()})
    return {k: {"onnxruntime_ms": round(ort_ms[k], 2), "openvino_ms": round(ov_ms[k], 2)} for k in files}
