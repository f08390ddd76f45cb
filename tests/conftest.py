"""Shared fixtures: tiny models, synthetic clips (cached per session) and a CLI runner."""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import Clip, make_clip  # noqa: E402
from tiny_model import write_tiny_model  # noqa: E402

from streamsr.commands.cli import main  # noqa: E402


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny models for x2/x3/x4: ``near_x*`` (content-preserving), ``tiny_x*`` (random) and
    ``exact_x*`` (exactly a nearest-neighbour upscale, for precision checks)."""
    folder = tmp_path_factory.mktemp("engines")
    for scale in (2, 3, 4):
        write_tiny_model(folder, scale=scale)
        write_tiny_model(folder, scale=scale, name="near", nearest=True)
        write_tiny_model(folder, scale=scale, name="exact", nearest=True, noise=0.0)
    return folder


@pytest.fixture(scope="module")
def near_x2_backend(models_dir: Path):
    """The content-preserving x2 model on onnxruntime, one thread (the live tests' backend)."""
    from streamsr.backends import create_backend
    from streamsr.types import ModelCard

    backend = create_backend("onnxruntime", ModelCard.load(models_dir / "near_x2.json"), threads=1)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def model_args(models_dir: Path) -> Callable[..., list[str]]:
    """CLI arguments that pick a tiny content-preserving model on onnxruntime."""

    def args(scale: int = 2, engine: str = "onnxruntime", name: str = "near") -> list[str]:
        return ["--model", str(models_dir / f"{name}_x{scale}.json"), "--scale", str(scale), "--engine", engine]

    return args


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Clip]:
    """``clip_factory(name, **make_clip_kwargs)``: one clip per name and session (inputs are
    never modified by the runtime; a test that damages a clip copies it first)."""
    folder = tmp_path_factory.mktemp("clips")
    cache: dict[str, Clip] = {}

    def make(name: str, **kwargs: object) -> Clip:
        if name not in cache:
            cache[name] = make_clip(folder / name, **kwargs)  # type: ignore[arg-type]
        return cache[name]

    return make


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``streamsr`` in-process; usage errors (SystemExit from argparse) count as exit codes."""

    def run(*argv: object) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run

