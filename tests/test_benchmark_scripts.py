"""Every script in benchmarks/ imports: a rename in streamsr must not leave one broken until the
day someone runs it (two did, after the colour helpers moved)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))
OPTIONAL = ("matplotlib", "ray", "openvino", "torch")  # extras a script may need; absent: skip


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_script_imports(name: str) -> None:
    code = (
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(BENCHMARKS)!r})\n"
        f"spec = importlib.util.spec_from_file_location('bench_script', {str(BENCHMARKS / name)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=BENCHMARKS)
    if r.returncode != 0:
        missing = [m for m in OPTIONAL if f"No module named '{m}" in r.stderr]
        if missing:
            pytest.skip(f"{name} needs {missing[0]}, not installed")
    assert r.returncode == 0, r.stderr[-1500:]
