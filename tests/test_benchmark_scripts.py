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


def _load(name: str, monkeypatch: pytest.MonkeyPatch):
    import importlib.util

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quality_plots_merge_runs_only_on_the_same_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    def run(path: Path, bicubic: float, models: dict[str, float]) -> Path:
        rows = {"none": {"bicubic": {"psnr": bicubic}, **{m: {"psnr": v} for m, v in models.items()}}}
        path.write_text(json.dumps({"macs_per_lr_pixel": {m: 1 for m in models}, "datasets": {"Set14": rows}}))
        return path

    merged_results = _load("plot_quality", monkeypatch).merged_results
    old = run(tmp_path / "old.json", 30.22, {"peer:ESPCN": 31.0, "repsr_x2": 32.26})
    new = run(tmp_path / "new.json", 30.22, {"repsr_x2": 32.70})
    rows, macs = merged_results([old, new], "Set14")
    assert {m: r["psnr"] for m, r in rows["none"].items()} == {"bicubic": 30.22, "peer:ESPCN": 31.0, "repsr_x2": 32.70}
    assert set(macs) == {"peer:ESPCN", "repsr_x2"}
    other = run(tmp_path / "other.json", 30.20, {"repsr_x2": 32.70})
    with pytest.raises(SystemExit, match="not the same inputs"):
        merged_results([old, other], "Set14")


def test_quality_refuses_a_peers_folder_without_the_graphs(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert _load("quality", monkeypatch).main(["--data", str(data), "--model", "espcn_x2", "--peers", str(tmp_path)]) == 2
    assert "no ESPCN_x2.pb" in capsys.readouterr().err


def test_live_bench_refuses_an_engine_it_cannot_open_in_one_line() -> None:
    r = subprocess.run([sys.executable, str(BENCHMARKS / "live_bench.py"), "--source", "file", "--engine", "nosuch"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["cannot run: unknown engine 'nosuch' (choose from auto, onnxruntime, "
                                             "openvino, torch, cuda, tensorrt)"]


def test_models_md_tables_are_the_shipped_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    """MODELS.md's generated tables say what engines/ holds: a re-exported or re-quantised card
    without `python benchmarks/models_table.py --write MODELS.md` fails here."""
    table = _load("models_table", monkeypatch)
    repo = BENCHMARKS.parent
    doc = (repo / "MODELS.md").read_text()
    written = doc.split(table.BEGIN, 1)[1].split(table.END, 1)[0].strip()
    assert written == table.tables(table.load_cards(repo / "engines")).strip()


def test_the_int8_table_says_which_files_auto_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _load("models_table", monkeypatch).int8_table([
        {"name": "a_x2", "onnx_int8": "a.int8.onnx", "int8_psnr_loss_db": 0.09, "int8_tolerance_db": 0.1},
        {"name": "b_x2", "onnx_int8": "b.int8.onnx", "int8_psnr_loss_db": 0.21, "int8_tolerance_db": 0.1},
        {"name": "c_x2"},  # no int8 file: no row
    ])
    assert len(rows) == 4 and "| int8 |" in rows[2] and "| fp32 |" in rows[3]
