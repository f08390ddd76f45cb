"""Write to a temporary name beside the target, rename on success, remove on failure.

A temporary file names its owner and is locked by it while it lives:

    .<stem>.sr<pid>-<start>-<boot>.<random>.partial<suffix>

``start`` is the owner's start time (clock ticks since boot, from /proc) and ``boot`` the
first 8 hex digits of the kernel's boot id, so a pid reused by another process or an earlier
boot cannot pass for the owner. The owner also holds an exclusive ``flock`` on the file.
A process killed with SIGKILL leaves its temporary file behind; ``sweep_stale`` (run before a
new output is written into a folder) removes such files, and only when nobody holds the lock
and the owner named in the file name is gone.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

from streamsr.durable import current_umask
from streamsr.errors import OutputError

try:  # POSIX; elsewhere temporaries are recognised by their owner's pid alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_TEMP_NAME = re.compile(
    r"^\.(?P<stem>.*)\.sr(?P<pid>\d+)-(?P<start>\d+)-(?P<boot>[0-9a-f]{8})\.[a-z0-9_]+\.partial(\.[^.]*)?$"
)
_LOCKS: dict[str, int] = {}  # temporary path -> the descriptor that holds its lock


def check_output_path(output: Path, inputs: list[Path], force: bool = False) -> None:
    """Fail early and clearly on an output that cannot be written, that would clobber an
    input, or that exists already (unless ``force``)."""
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
        if same_file(output, src):
            raise OutputError(f"output would overwrite the input: {output}")
    if not force and (output.exists() or output.is_symlink()):
        raise OutputError(f"output exists: {output} (add --force or -y to overwrite it)")


def same_file(a: Path, b: Path) -> bool:
    """The same path under another spelling, a link to it, or a hard link of it."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# -- owner identity ----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8].lower()
    except OSError:
        return "00000000"


def process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; 0 where /proc is absent; None if no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return 0 if not Path("/proc/self/stat").exists() else None
    return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22; the name may hold spaces


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"sr{pid}-{process_start(pid) or 0}-{boot_id()}"


def owner_alive(pid: int, start: int, boot: str) -> bool:
    """Whether the process that named a temporary file may still be running on this machine."""
    if boot != boot_id():
        return boot == "00000000" and _pid_alive(pid)  # another boot (or an unknown one)
    now = process_start(pid)
    if now is None:
        return False
    return now == start if start and now else _pid_alive(pid)


# -- temporaries -------------------------------------------------------------------------------
def temporary_path(target: Path) -> Path:
    """A fresh, locked file name beside ``target`` that keeps its suffix (muxers choose by suffix)."""
    parent = target.parent or Path(".")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.{owner_token()}.", suffix=f".partial{target.suffix}",
                                    dir=parent)
    except OSError as e:  # os.access can say yes and creation still fail (root, read-only or NFS mounts)
        raise OutputError(f"cannot create files in {parent}: {e.strerror or e}") from None
    if _lock(fd, blocking=True):
        _LOCKS[name] = fd
    else:
        os.close(fd)
    return Path(name)


def _lock(fd: int, blocking: bool) -> bool | None:
    """True when locked, False when another process holds the lock, None when locks are unsupported."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK, EOPNOTSUPP: a file system without locks
    return True


def _release(temp: Path) -> None:
    fd = _LOCKS.pop(str(temp), None)
    if fd is not None:
        os.close(fd)


def commit(temp: Path, target: Path, overwrite: bool = True) -> None:
    """Give the file ordinary permissions (mkstemp makes it private) and move it into place.

    With ``overwrite=False`` an output that appeared meanwhile (another run) is not replaced.
    """
    try:
        os.chmod(temp, 0o666 & ~current_umask())
        if overwrite:
            os.replace(temp, target)
        else:
            _move_no_clobber(temp, target)
    finally:
        _release(temp)


def _move_no_clobber(temp: Path, target: Path) -> None:
    try:
        os.link(temp, target)  # fails if target exists: atomic, unlike a check then a rename
    except FileExistsError:
        discard(temp)
        raise OutputError(f"output exists: {target} (it appeared during the run; nothing was replaced)") from None
    except OSError:  # file systems without hard links
        if target.exists():
            discard(temp)
            raise OutputError(f"output exists: {target} (it appeared during the run; nothing was replaced)") from None
        os.replace(temp, target)
        return
    os.unlink(temp)


def discard(temp: Path) -> None:
    try:
        temp.unlink()
    except FileNotFoundError:
        pass
    finally:
        _release(temp)


def sweep_stale(folder: Path) -> list[Path]:
    """Remove the temporary files that killed runs left in ``folder``; never one whose owner lives."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match is None:
            continue
        path = folder / name
        if _remove_if_orphaned(path, int(match["pid"]), int(match["start"]), match["boot"]):
            log.warning("removed %s, left by an earlier run that was killed (pid %s)", path, match["pid"])
            removed.append(path)
    return removed


def _remove_if_orphaned(path: Path, pid: int, start: int, boot: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        locked = _lock(fd, blocking=False)
        if locked is False:
            return False  # a live process holds it
        if locked is None and boot != boot_id():
            return False  # no locks here, and the owner may be another machine
        if owner_alive(pid, start, boot):
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
