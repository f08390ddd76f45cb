"""Files that are whole or absent: written under a unique temporary name in the same folder,
fsynced, renamed over the target with ``os.replace``, and the folder fsynced. A crash, a full
disk or two writers at once leave the old file or the new one, never a torn one.

Used by the TensorRT engine cache (plans, timing caches, their keys) and the batch journal's
compaction. Video outputs have their own temporary files (sinks/atomic.py), which also name
and lock their owner so that stale ones can be swept.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A unique temporary path beside ``target`` to write; on success it is fsynced and renamed
    over ``target`` (and the folder fsynced), on failure removed."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(temp, 0o644 & ~current_umask())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(target: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``target`` so that readers see the old file or the whole new one."""
    with atomic_path(target) as temp, open(temp, "wb") as f:
        f.write(data)
