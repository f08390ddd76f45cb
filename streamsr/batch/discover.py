"""Which files a batch job works on, and where each one's output goes.

A source is a file, a folder (walked recursively) or a glob pattern. The output tree mirrors
the input's relative paths: a folder's files keep their path below the folder, a glob's
matches their path below the pattern's last literal folder, a named file its bare name.

    /archive/cam1/2024-05-01.avi  with SRC /archive     ->  OUTDIR/cam1/2024-05-01.mkv
    /archive/cam1/2024-05-01.mp4  with SRC '/archive/*/2024-05-*.mp4'  ->  OUTDIR/cam1/2024-05-01.mp4

Folders and glob patterns contribute video files (by suffix; hidden files and folders are
skipped); a file named explicitly is taken whatever its suffix, so a bad one is reported
rather than ignored. Images are for ``streamsr enhance FOLDER``.
"""
from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from streamsr.errors import ConfigError, InputError
from streamsr.sources.image_source import is_image_input

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".flv", ".wmv",
    ".webm", ".3gp", ".dav", ".h264", ".h265", ".hevc",
})
# output container for --container same: the input's own where the encoders are at home in it
SAME_CONTAINER = {".mp4": ".mp4", ".m4v": ".mp4", ".mov": ".mov", ".mkv": ".mkv"}
CONTAINERS = ("same", "mp4", "mkv", "mov")


@dataclass(frozen=True)
class Item:
    """One input file and its output, relative to OUTDIR (``rel`` is also its journal key)."""

    src: Path  # absolute
    rel: Path

    @property
    def key(self) -> str:
        return self.rel.as_posix()


def output_suffix(src: Path, container: str) -> str:
    """``same`` keeps .mp4/.mov/.mkv and writes everything else (AVI, TS, ...) as .mkv."""
    if container not in CONTAINERS:
        raise ConfigError(f"--container takes {', '.join(CONTAINERS)}, not {container!r}")
    if container == "same":
        return SAME_CONTAINER.get(src.suffix.lower(), ".mkv")
    return f".{container}"


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _glob_base(pattern: str) -> Path:
    """The folder before the pattern's first part with a wildcard."""
    parts = Path(pattern).parts
    literal = []
    for part in parts:
        if _has_magic(part):
            break
        literal.append(part)
    return Path(*literal) if literal else Path(".")


def _walk(folder: Path, skip: Path | None) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and
                         (skip is None or (root_path / d).resolve() != skip))
        found += [root_path / f for f in sorted(files)
                  if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_SUFFIXES]
    return found


def discover(sources: list[str], outdir: Path, container: str = "same") -> list[Item]:
    """Every input file of ``sources`` with its output path below ``outdir``, in a stable order.

    Raises InputError for a source that is missing or matches nothing, and ConfigError when
    two inputs would write the same output.
    """
    skip = outdir.resolve()
    pairs: list[tuple[Path, Path]] = []  # (file, path relative to its source's base)
    for source in sources:
        path = Path(source)
        if path.is_file():
            if is_image_input(path):
                raise InputError(f"{path} is an image: streamsr batch takes videos (streamsr enhance takes "
                                 "images and folders of images)")
            pairs.append((path, Path(path.name)))
        elif path.is_dir():
            files = _walk(path, skip)
            if not files:
                log.warning("no video files in %s", path)
            pairs += [(f, f.relative_to(path)) for f in files]
        elif _has_magic(source):
            base = _glob_base(source)
            matches = sorted(Path(m) for m in glob.glob(source, recursive=True))
            if not matches:
                raise InputError(f"no files match {source}")
            for m in matches:
                if m.is_dir():
                    pairs += [(f, f.relative_to(base)) for f in _walk(m, skip)]
                elif m.is_file() and m.suffix.lower() in VIDEO_SUFFIXES and not _inside(m.resolve(), skip):
                    pairs.append((m, m.relative_to(base)))
        else:
            raise InputError(f"input not found: {source}")
    items: list[Item] = []
    seen_src: set[Path] = set()
    by_output: dict[Path, Path] = {}
    for file, rel in pairs:
        src = file.resolve()
        if src in seen_src or _inside(src, skip):
            continue
        seen_src.add(src)
        out_rel = rel.with_suffix(output_suffix(src, container))
        if out_rel in by_output:
            raise ConfigError(f"{by_output[out_rel]} and {src} would both be written to {outdir / out_rel}; "
                              "run them in separate jobs or give another --container")
        by_output[out_rel] = src
        items.append(Item(src, out_rel))
    if not items:
        raise InputError(f"no video files found in {' '.join(sources)}")
    return items


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
