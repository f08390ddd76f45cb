"""The TensorRT engine cache is written atomically, and built plans stay out of git and the wheel.

TensorRT cannot be installed here: the fake ``tensorrt`` module and fake CUDA torch of
tests/fake_gpu.py drive the real ``ensure_plan``/``build_plan`` code, here and in a subprocess. A full disk mid-write is real: the writing process runs
under a small RLIMIT_FSIZE, so a write stops part-way with EFBIG, as on a full disk."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from streamsr.types import ModelCard

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parent.parent

FAKES = '''
import fake_gpu

def install_fakes(plan: bytes, timing: bytes):
    fake_gpu.install_for_process(version="10.3.0", plan_bytes=plan, timing_bytes=timing)
    from streamsr.backends import tensorrt_backend
    return tensorrt_backend
'''


def _fakes(plan: bytes, timing: bytes) -> ModuleType:
    namespace: dict[str, object] = {}
    exec(compile(FAKES, "fakes", "exec"), namespace)  # noqa: S102 - test scaffolding, our own text
    return namespace["install_fakes"](plan, timing)  # type: ignore[operator]


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Installs the fakes; monkeypatch undoes them (it remembers what the fakes will replace)."""
    monkeypatch.setenv("STREAMSR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    from streamsr.backends import tensorrt_backend

    monkeypatch.setattr(tensorrt_backend, "require_cuda", tensorrt_backend.require_cuda)
    yield lambda plan, timing: _fakes(plan, timing)


def test_every_cache_file_is_fsynced_under_a_unique_name_then_renamed(fake_trt, models_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from streamsr.backends.engine_cache import ShapeProfile

    backend = fake_trt(b"P" * 5000, b"T" * 3000)
    synced: list[str] = []
    renames: list[tuple[str, str, bool]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        renames.append((str(src), str(dst), str(src) in synced))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    card = ModelCard.load(models_dir / "near_x2.json")
    plan = backend.ensure_plan(card, ShapeProfile.for_stream(48, 64, 2), "fp32")
    assert plan.read_bytes() == b"P" * 5000 and (plan.parent / "timing.cache").read_bytes() == b"T" * 3000
    targets = {Path(dst).name for _, dst, _ in renames}
    assert {plan.name, plan.with_suffix(".json").name, "timing.cache"} <= targets, renames
    temps = [src for src, _, _ in renames]
    assert len(set(temps)) == len(temps)  # a unique temporary name per write
    for src, dst, was_synced in renames:
        assert Path(src).parent == Path(dst).parent and was_synced, (src, dst, synced)
    assert not [p for p in plan.parent.iterdir() if p.name.startswith(".") or p.suffix == ".partial"]


def _run_with_full_disk(tmp_path: Path, card: Path, plan_size: int, timing_size: int, limit: int) -> str:
    script = tmp_path / "build.py"
    script.write_text(FAKES + textwrap.dedent(f'''
        import resource, signal
        from pathlib import Path
        backend = install_fakes(b"P" * {plan_size}, b"T" * {timing_size})
        from streamsr.backends.engine_cache import ShapeProfile
        from streamsr.types import ModelCard
        card = ModelCard.load(Path({str(card)!r}))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        try:
            backend.ensure_plan(card, ShapeProfile.for_stream(48, 64, 2), "fp32")
        except OSError as e:
            print("failed:", e.strerror)
        else:
            print("built")
    '''))
    import streamsr

    here = str(Path(streamsr.__file__).resolve().parent.parent)  # the same streamsr as this test's
    tests = str(Path(__file__).resolve().parent)  # fake_gpu
    env = {**os.environ, "STREAMSR_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [here, tests, os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_full_disk_while_writing_leaves_the_old_files_and_no_debris(models_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "timing.cache").write_bytes(b"OLD" * 100)
    card = models_dir / "near_x2.json"
    # the timing cache does not fit: the old one must survive whole
    assert "failed" in _run_with_full_disk(tmp_path, card, 1000, 200_000, 100_000)
    assert (cache / "timing.cache").read_bytes() == b"OLD" * 100
    # the timing cache fits, the plan does not: no plan (torn or whole) and no temporary file left
    assert "failed" in _run_with_full_disk(tmp_path, card, 300_000, 2000, 100_000)
    assert not list(cache.glob("*.plan")), list(cache.iterdir())
    assert not [p for p in cache.iterdir() if p.name.startswith(".") or ".partial" in p.name], list(cache.iterdir())
    # with room again it builds, and the plan is whole
    assert "built" in _run_with_full_disk(tmp_path, card, 300_000, 2000, 10_000_000)
    assert [p.stat().st_size for p in cache.glob("*.plan")] == [300_000]


def test_built_engines_are_git_ignored() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("engines/cache/espcn_x2.fp16.0123abcd.plan", "engines/cache/espcn_x2.fp16.0123abcd.json",
                 "engines/cache/timing.cache", "engines/cache/espcn_x2.fp16.onnx"):
        r = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert r.returncode == 0, f"{path} is not ignored by git"


def test_the_wheel_ships_models_but_no_built_engine(tmp_path: Path) -> None:
    builders = pytest.importorskip("hatchling.builders.wheel", reason="hatchling is not installed")
    root = tmp_path / "src"
    root.mkdir()
    for name in ("pyproject.toml", "README.md", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "streamsr", root / "streamsr", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "engines" / "cache").mkdir(parents=True)
    (root / "engines" / "espcn_x2.json").write_text("{}")
    (root / "engines" / "espcn_x2.onnx").write_bytes(b"onnx")
    for name in ("espcn_x2.fp16.0123abcd.plan", "espcn_x2.fp16.0123abcd.json", "timing.cache",
                 ".espcn_x2.fp16.0123abcd.plan.x1y2.tmp"):
        (root / "engines" / "cache" / name).write_bytes(b"built here")
    (root / "engines" / "stray.plan").write_bytes(b"built here")
    wheel = builders.WheelBuilder(str(root))
    built = Path(next(iter(wheel.build(directory=str(tmp_path / "dist"), versions=["standard"]))))
    names = zipfile.ZipFile(built).namelist()
    assert "streamsr/_engines/espcn_x2.onnx" in names and "streamsr/_engines/espcn_x2.json" in names
    assert "streamsr/commands/live.py" in names
    leaked = [n for n in names if "/cache/" in n or n.endswith((".plan", ".tmp", "timing.cache"))]
    assert not leaked, leaked
