"""The layering of DESIGN.md, checked on the source: from the top, commands -> pipeline | live
hub | batch -> sources | backends | sinks -> models, colour, types, errors and the shared helpers.
A lower layer never imports a higher one, sources, backends and sinks do not import each other,
only commands import the CLI module, the shared pipeline core does not know the live hub or the
batch runner, and the runtime never imports ``train/``.

Every import counts: at module level, inside functions (lazy imports) and under TYPE_CHECKING.
A new module falls into the bottom layer unless it is named below, so a new command or engine
module must be added here, which is where its place in the layering is decided.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streamsr

PACKAGE = Path(streamsr.__file__).parent
COMMANDS, ENGINES, IO, FOUNDATION = 3, 2, 1, 0
LAYER_NAMES = {COMMANDS: "commands", ENGINES: "engines", IO: "sources/backends/sinks", FOUNDATION: "foundation"}
# Modules and packages above the foundation. "streamsr" is the package itself: its __init__ is the
# public API (Upscaler, enhance_video), so nothing below the commands may import it.
LAYERS: dict[str, int] = {
    "streamsr": COMMANDS, "streamsr.__main__": COMMANDS, "streamsr.commands": COMMANDS, "streamsr.api": COMMANDS,
    # the file job (a file, an image or a folder through one pipeline), used by the API, batch and live
    "streamsr.enhance": ENGINES, "streamsr.enhance_images": ENGINES,
    "streamsr.evaluate": ENGINES,  # the evaluation protocol's library (``streamsr eval`` is commands/eval)
    "streamsr.pipeline": ENGINES, "streamsr.livepipe": ENGINES, "streamsr.batch": ENGINES,
    "streamsr.carry": ENGINES,  # joins a source's stream facts to a sink's settings
    "streamsr.sources": IO, "streamsr.backends": IO, "streamsr.sinks": IO,
}
NOT_YET_HERE: set[str] = set()  # modules named in DESIGN.md that have not arrived yet


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYERS and (n == len(parts) or name != "streamsr"):
            return LAYERS[name]
    return FOUNDATION


def top_package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def violation(module: str, imported: str) -> str | None:
    """Why ``module`` may not import ``imported``, or None when it may."""
    if imported == "train" or imported.startswith("train."):
        return "the runtime never imports train/"
    if not (imported == "streamsr" or imported.startswith("streamsr.")):
        return None
    mine, theirs = layer_of(module), layer_of(imported)
    if imported == "streamsr.commands.cli" and mine != COMMANDS:
        return "only the commands import the CLI module"
    if theirs > mine:
        return f"{LAYER_NAMES[mine]} may not import {LAYER_NAMES[theirs]}"
    if mine == theirs == IO and top_package(module) != top_package(imported):
        return "sources, backends and sinks do not import each other"
    if top_package(module) == "streamsr.pipeline" and top_package(imported) in ("streamsr.livepipe", "streamsr.batch"):
        return "the shared pipeline core does not know its users"
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module that ``source`` (the text of ``module``) imports, anywhere in it."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base == "__future__":
                continue
            for alias in node.names:  # `from streamsr import zoo` imports the module streamsr.zoo
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
    return found


def all_violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for imported in sorted(imports_of(path.read_text(), module, path.name == "__init__.py")):
            reason = violation(module, imported)
            if reason:
                problems.append(f"{module} imports {imported}: {reason}")
    return problems


def test_no_module_imports_against_the_layering() -> None:
    problems = all_violations()
    assert not problems, "\n".join(problems)


def test_every_named_layer_exists() -> None:
    missing = [name for name in LAYERS if name not in NOT_YET_HERE and not _is_module(name)]
    assert not missing, f"named in LAYERS but not in the package: {missing}"


@pytest.mark.parametrize("module, imported", [
    ("streamsr.sinks.segments", "streamsr.livepipe.hub"),  # a sink that knows the camera hub
    ("streamsr.synthetic", "streamsr.sinks.av_sink"),  # a helper that imports a sink
    ("streamsr.colour", "streamsr.sinks.video_stream"),
    ("streamsr.pipeline.pipeline", "streamsr.commands.cli"),  # the library importing the CLI
    ("streamsr.livepipe.hub", "streamsr.commands.cli"),
    ("streamsr.sinks.av_sink", "streamsr"),  # the package root is the public API
    ("streamsr.backends.base", "streamsr.enhance"),
    ("streamsr.sources.av_source", "streamsr.sinks.atomic"),  # peers
    ("streamsr.pipeline.batcher", "streamsr.livepipe.queue"),  # the core knowing its user
    ("streamsr.types", "train.loop"),
])
def test_the_rules_reject(module: str, imported: str) -> None:
    assert violation(module, imported)


@pytest.mark.parametrize("module, imported", [
    ("streamsr.commands.live", "streamsr.livepipe.hub"), ("streamsr.commands.live", "streamsr.commands.cli"),
    ("streamsr.livepipe.hub", "streamsr.pipeline.batcher"), ("streamsr.sinks.av_sink", "streamsr.sinks.atomic"),
    ("streamsr.sinks.video_stream", "streamsr.encoding"), ("streamsr.lr_degrade", "streamsr.colour"),
    ("streamsr.commands.bench", "streamsr.zoo"), ("streamsr.types", "numpy"),
])
def test_the_rules_allow(module: str, imported: str) -> None:
    assert violation(module, imported) is None


def test_imports_are_found_wherever_they_are_written() -> None:
    source = '''
from __future__ import annotations
from typing import TYPE_CHECKING
from . import atomic
from ..colour import Colour
from streamsr import zoo, __version__
if TYPE_CHECKING:
    from streamsr.livepipe.metrics import CameraMetrics

def lazy():
    import streamsr.commands.cli
    from train.loop import train
'''
    found = imports_of(source, "streamsr.sinks.example")
    assert {"streamsr.sinks.atomic", "streamsr.colour", "streamsr.zoo", "streamsr", "streamsr.livepipe.metrics",
            "streamsr.commands.cli", "train.loop", "typing"} <= found
    assert "__future__" not in found
    assert imports_of("from .queue import NewestQueue", "streamsr.livepipe", is_package=True) == {"streamsr.livepipe.queue"}
