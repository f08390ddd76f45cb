"""`streamsr bench`: inference alone is timed the way the pipeline runs it (on a thread of its
own, so that torch's OpenMP behaves the same in both), and the JSON goes exactly where it is
told, or to the documented default, checked before anything is measured."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from streamsr.commands import bench
from streamsr.backends.base import Done
from streamsr.errors import OutputError
from streamsr.types import Frame


class ThreadRecorder:
    in_flight = 1

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def submit(self, batch: np.ndarray) -> Done:
        self.threads.add(threading.current_thread().name)
        return Done(np.repeat(np.repeat(batch, 2, axis=1), 2, axis=2))


def test_inference_alone_runs_off_the_main_thread_like_the_pipeline():
    frames = [Frame(index=i, planes=(np.zeros((8, 8), np.uint8),) * 3) for i in range(4)]
    backend = ThreadRecorder()
    fps, outputs = bench.time_inference(backend, frames, batch=1)
    assert fps > 0 and len(outputs) == 4
    assert threading.main_thread().name not in backend.threads
    assert backend.threads == {"streamsr-bench-infer"}


def test_inference_errors_reach_the_caller():
    class Broken(ThreadRecorder):
        def submit(self, batch):
            raise RuntimeError("engine failed")

    frames = [Frame(index=0, planes=(np.zeros((8, 8), np.uint8),) * 3)]
    with pytest.raises(RuntimeError, match="engine failed"):
        bench.time_inference(Broken(), frames, batch=1)


def test_json_path(tmp_path):
    assert bench.json_path(tmp_path / "r.json") == tmp_path / "r.json"
    with pytest.raises(OutputError, match="folder"):
        bench.json_path(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        bench.json_path(tmp_path / "no" / "r.json")
    default = bench.json_path(None)
    assert default.parent == bench.DEFAULT_JSON_DIR and default.name.startswith("bench-")


def test_bench_writes_only_its_json(tmp_path, models_dir, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "matmul_rate", lambda: 100.0)  # the BLAS measurement is not under test
    monkeypatch.setattr(bench, "synthetic_clip", _small_clip)
    target = tmp_path / "results" / "x2.json"
    target.parent.mkdir()
    r = run_cli("bench", "--engines", "onnxruntime", "--model", models_dir / "tiny_x2.json", "--frames", 4,
                "--no-peer", "--json", target)
    assert r.code == 0, r.err
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["results", "results/x2.json"]
    result = json.loads(target.read_text())["results"][0]
    assert result["engine"] == "onnxruntime" and result["frames"] == 4


def _small_clip(path, frames: int):
    from streamsr.colour import rgb_to_yuv420_swscale
    from streamsr.synthetic import scene_frames

    bench.write_clip(path, (rgb_to_yuv420_swscale(f) for f in scene_frames(96, 64, frames)), lossless=False)
    return path


def test_the_machine_line_says_when_the_process_is_pinned_to_fewer_cpus(capsys, monkeypatch):
    """A shell pinned to one of two CPUs measured one core while the note said two (a table in
    BENCHMARKS.md had to be corrected): the report says so itself."""
    report = {"machine": {"cpu": "AMD EPYC", "cores": 1, "cpus_on_machine": 2}, "matmul_gflops": 90.0, "clip": "c",
              "decode_fps": 1000.0, "results": [], "peer_opencv_espcn_fps": {}}
    bench.print_report(report)
    assert "machine: AMD EPYC, 1 of its 2 cores (CPU affinity);" in capsys.readouterr().out
    report["machine"]["cores"] = 2
    bench.print_report(report)
    assert "machine: AMD EPYC, 2 cores;" in capsys.readouterr().out
    monkeypatch.setattr(bench, "default_threads", lambda: 1)
    assert bench.machine_info()["cores"] == 1 and bench.machine_info()["cpus_on_machine"] >= 1


@pytest.mark.parametrize("flag", [["--crf", "99"], ["--preset", "warp"]])
def test_bad_encoder_settings_are_one_line_before_anything_is_measured(flag, run_cli, tmp_path):
    r = run_cli("bench", "--frames", "2", "--no-peer", "--json", tmp_path / "b.json", *flag)
    assert r.code != 0 and r.err.strip().count("\n") == 0 and ("--crf 99" in r.err or "warp" in r.err), r.err
    assert "matrix-multiply" not in r.out and not (tmp_path / "b.json").exists()
