"""Write to a temporary name beside the target, rename on success, remove on failure."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from streamsr.errors import OutputError


def check_output_path(output: Path, inputs: list[Path]) -> None:
    """Fail early and clearly on an output that cannot be written or that would clobber an input."""
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"output directory does not exist: {parent}")
    if not parent.is_dir():
        raise OutputError(f"output parent is not a directory: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output directory is not writable: {parent}")
    if output.is_dir():
        raise OutputError(f"output is a directory, expected a file: {output}")
    for src in inputs:
        if output.resolve() == src.resolve():
            raise OutputError(f"output would overwrite the input: {output}")


def temporary_path(target: Path) -> Path:
    """A fresh file name beside ``target`` that keeps its suffix (muxers choose by suffix)."""
    parent = target.parent or Path(".")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".partial{target.suffix}", dir=parent)
    except OSError as e:  # os.access can say yes and creation still fail (root, read-only or NFS mounts)
        raise OutputError(f"cannot create files in {parent}: {e.strerror or e}") from None
    os.close(fd)
    return Path(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def commit(temp: Path, target: Path) -> None:
    """Give the file ordinary permissions (mkstemp makes it private) and move it into place."""
    os.chmod(temp, 0o666 & ~_umask())
    os.replace(temp, target)


def discard(temp: Path) -> None:
    try:
        temp.unlink()
    except FileNotFoundError:
        pass
