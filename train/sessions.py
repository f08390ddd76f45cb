"""Where each stretch of a long run trained: ``runs/<name>/sessions.csv``, one row per start.

A run is stopped and resumed many times, on whichever machine a session gets, so one
"hardware" field cannot describe it. Every start of ``train()`` appends the step it starts
from and the machine, threads and precision it runs with; the card lists them all with the
steps each one trained. The file stays tiny and is kept in the repository beside the
checkpoint.
"""
from __future__ import annotations

import csv
import os
import platform
import time
from pathlib import Path
from typing import Any

SESSIONS_NAME = "sessions.csv"
FIELDS = ["step_from", "started_utc", "hardware", "device", "threads", "precision", "note"]


def hardware() -> str:
    """The CPU (model, cores, vector width, native bf16) or GPU this process trains on."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    name, flags = platform.processor() or "cpu", ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        name = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = next(line for line in info.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    simd = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "")
    bf16 = ", native bf16" if "avx512_bf16" in flags or "amx_bf16" in flags else ""
    return f"{name}, {os.cpu_count()} cores, {simd}{bf16}".rstrip(", ")


def record_start(run_dir: Path, step_from: int, device: str, threads: int, precision: str) -> None:
    path = Path(run_dir) / SESSIONS_NAME
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({
            "step_from": step_from,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hardware": hardware(),
            "device": device,
            "threads": threads,
            "precision": precision,
            "note": "",
        })


def read_sessions(run_dir: Path, final_step: int) -> list[dict[str, Any]]:
    """The recorded starts, each with the steps it trained (up to the next start, or ``final_step``).

    A start that was resumed before its first checkpoint trained nothing that was kept: it
    gets 0 steps. Empty when the run has no sessions file (runs from before it existed).
    """
    path = Path(run_dir) / SESSIONS_NAME
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = [dict(r) for r in csv.DictReader(f)]
    for row, nxt in zip(rows, rows[1:] + [None]):
        row["step_from"] = int(row["step_from"])
        row["threads"] = int(row["threads"]) if str(row.get("threads", "")).isdigit() else row.get("threads")
        end = final_step if nxt is None else int(nxt["step_from"])
        row["steps"] = max(0, end - row["step_from"])
        if not row.get("note"):
            row.pop("note", None)
    return rows


def hardware_summary(sessions: list[dict[str, Any]]) -> str | None:
    """Each distinct machine and precision with the steps it trained, most steps first."""
    steps: dict[str, int] = {}
    for s in sessions:
        key = f"{s['hardware']} ({s['device']}, {s['precision']})"
        steps[key] = steps.get(key, 0) + int(s["steps"])
    if not steps:
        return None
    return "; ".join(f"{k}: {v} steps" for k, v in sorted(steps.items(), key=lambda kv: -kv[1]) if v > 0)
