"""The batch journal: what is done, what failed and what was in progress, kept in OUTDIR.

An append-only JSON-lines file, each record flushed and fsync'ed before the job goes on.
A crash can tear only the last line, which is ignored on reading; the latest record of a
file (or segment) wins. On opening, the journal is compacted (rewritten to a temporary name,
fsync'ed, renamed). JSON lines rather than SQLite: OUTDIR is often a network file system
shared with a cluster, where SQLite's WAL mode is not supported.

A lock (``flock`` on ``OUTDIR/.streamsr-batch/lock``) keeps a second job off the same OUTDIR.

Records (``kind``):
  file     {"key", "state": running|done|failed, "src", "attempt", "error", "size", "mtime_ns",
            "sha256", "frames", "seconds", "options"}
  segment  {"key", "index", "plan", "frames", "file"}: one segment of a split file is done
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamsr.durable import atomic_path
from streamsr.errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, the journal still works
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

STATE_DIR = ".streamsr-batch"
JOURNAL = "journal.jsonl"


@dataclass(frozen=True)
class Fingerprint:
    """What identifies an input's content: size and mtime for the fast check, then a hash."""

    size: int
    mtime_ns: int
    sha256: str | None = None

    @classmethod
    def of(cls, path: Path, with_hash: bool = False) -> Fingerprint:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, sha256_file(path) if with_hash else None)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def same_content(record: dict[str, Any], path: Path) -> bool:
    """Whether ``path`` still holds what ``record`` (a done file record) was made from.

    Same size and mtime: yes, without reading the file. Same size, other mtime (a copy, a
    touch): compare the content hash. Another size: no.
    """
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != record.get("size"):
        return False
    if st.st_mtime_ns == record.get("mtime_ns"):
        return True
    return record.get("sha256") is not None and sha256_file(path) == record["sha256"]


class Journal:
    def __init__(self, outdir: Path) -> None:
        self.folder = outdir / STATE_DIR
        self.path = self.folder / JOURNAL
        self.files: dict[str, dict[str, Any]] = {}
        self.segments: dict[tuple[str, int], dict[str, Any]] = {}
        self._lock_fd: int | None = None
        self._fd: int | None = None

    # -- opening ----------------------------------------------------------------------------
    def open(self) -> Journal:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create {self.folder}: {e.strerror or e}") from None
        self._lock()
        for record in self._read():
            self._apply(record)
        for key, index in [k for k in self.segments if self.files.get(k[0], {}).get("state") == "done"]:
            del self.segments[(key, index)]  # a finished file's segments are gone
        self._compact()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self

    def _lock(self) -> None:
        lock = self.folder / "lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise OutputError(f"another streamsr batch job (pid {holder}) is working in "
                                  f"{self.folder.parent}") from None
            except OSError:  # a file system without locks
                log.warning("cannot lock %s; make sure no other job uses this output folder", lock)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _read(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        records = []
        for n, line in enumerate(lines):
            try:
                record = json.loads(line)
            except ValueError:
                if n == len(lines) - 1:
                    log.info("ignoring the torn last line of %s (the job was killed while writing it)", self.path)
                else:
                    log.warning("ignoring an unreadable line %d of %s", n + 1, self.path)
                continue
            if isinstance(record, dict) and record.get("kind") in ("file", "segment"):
                records.append(record)
        return records

    def _apply(self, record: dict[str, Any]) -> None:
        if record["kind"] == "file":
            self.files[record["key"]] = record
        else:
            self.segments[(record["key"], int(record["index"]))] = record

    def _compact(self) -> None:
        records = list(self.files.values()) + list(self.segments.values())
        with atomic_path(self.path) as temp, open(temp, "w") as f:
            for record in records:
                f.write(json.dumps(record, sort_keys=True) + "\n")

    # -- writing ----------------------------------------------------------------------------
    def write(self, record: dict[str, Any]) -> None:
        assert self._fd is not None, "journal not open"
        record = {**record, "t": round(time.time(), 3)}
        os.write(self._fd, (json.dumps(record, sort_keys=True) + "\n").encode())
        os.fsync(self._fd)
        self._apply(record)

    def file_running(self, key: str, src: Path, attempt: int) -> None:
        self.write({"kind": "file", "key": key, "state": "running", "src": str(src), "attempt": attempt})

    def file_done(self, key: str, src: Path, fp: Fingerprint, frames: int, seconds: float,
                  options: dict[str, Any]) -> None:
        self.write({"kind": "file", "key": key, "state": "done", "src": str(src), "size": fp.size,
                    "mtime_ns": fp.mtime_ns, "sha256": fp.sha256, "frames": frames,
                    "seconds": round(seconds, 3), "options": options})

    def file_failed(self, key: str, src: Path, error: str, options: dict[str, Any]) -> None:
        self.write({"kind": "file", "key": key, "state": "failed", "src": str(src), "error": error,
                    "options": options})

    def segment_done(self, key: str, index: int, plan: str, frames: int, file: str) -> None:
        self.write({"kind": "segment", "key": key, "index": index, "plan": plan, "frames": frames, "file": file})

    def segments_of(self, key: str, plan: str) -> dict[int, dict[str, Any]]:
        """The done segments of ``key`` under ``plan`` (another plan's segments are stale)."""
        return {i: r for (k, i), r in self.segments.items() if k == key and r.get("plan") == plan}

    def forget_segments(self, key: str) -> None:
        """Drop a file's segment records from memory (the next compaction drops them on disk)."""
        for k in [k for k in self.segments if k[0] == key]:
            del self.segments[k]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

