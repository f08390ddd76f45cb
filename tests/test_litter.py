"""Temporary files: a run killed with SIGKILL leaves one, and a later run removes it, but
never one that a live process still owns (by its lock, or by the pid and start time in
its name)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from synth import leftovers, make_clip
from test_interrupt import long_clip, wait_for_partial  # noqa: F401 - the fixture is shared

from streamsr.sinks.atomic import boot_id, discard, owner_token, process_start, sweep_stale, temporary_path


def stale_name(folder: Path, token: str, stem: str = "up") -> Path:
    path = folder / f".{stem}.{token}.abc123xy.partial.mp4"
    path.write_bytes(b"partial")
    return path


def finished_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_names_carry_their_owner(tmp_path):
    temp = temporary_path(tmp_path / "up.mp4")
    try:
        assert temp.name.startswith(f".up.sr{os.getpid()}-") and temp.name.endswith(".partial.mp4")
        assert owner_token() in temp.name
    finally:
        discard(temp)
    assert leftovers(tmp_path) == []


def test_the_file_of_a_dead_owner_is_removed(tmp_path):
    dead = stale_name(tmp_path, owner_token(finished_pid()))
    assert sweep_stale(tmp_path) == [dead] and not dead.exists()


def test_a_reused_pid_does_not_keep_a_file(tmp_path):
    """Our own pid, but another start time: the process that wrote it is gone."""
    reused = stale_name(tmp_path, f"sr{os.getpid()}-{(process_start(os.getpid()) or 0) + 1}-{boot_id()}")
    assert sweep_stale(tmp_path) == [reused]


def test_a_file_from_an_earlier_boot_is_removed(tmp_path):
    other_boot = "f" * 8 if boot_id() != "f" * 8 else "e" * 8
    old = stale_name(tmp_path, f"sr{os.getpid()}-{process_start(os.getpid()) or 0}-{other_boot}")
    assert sweep_stale(tmp_path) == [old]


def test_a_live_owner_keeps_its_file(tmp_path):
    """A live process without a lock (its pid and start time match) and this process's own
    locked temporary are both left alone; so are other files."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        named = stale_name(tmp_path, owner_token(sleeper.pid), stem="other")
        locked = temporary_path(tmp_path / "mine.mp4")
        plain = tmp_path / ".notes.partial.mp4"
        plain.write_text("not ours")
        assert sweep_stale(tmp_path) == []
        assert named.exists() and locked.exists() and plain.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        discard(locked)


def test_a_locked_file_is_kept_even_if_its_named_owner_is_dead(tmp_path):
    """The lock is what counts (a process on another machine sharing the folder, say)."""
    path = stale_name(tmp_path, owner_token(finished_pid()))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert sweep_stale(tmp_path) == [] and path.exists()
    finally:
        holder.kill()
        holder.wait()
    assert sweep_stale(tmp_path) == [path]


@pytest.mark.slow
def test_sigkill_leftover_is_removed_by_the_next_run(long_clip, models_dir, tmp_path, run_cli, caplog):  # noqa: F811
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamsr", "enhance", str(long_clip.path), "-o", str(out_dir / "up.mp4"),
         "--model", str(models_dir / "near_x2.json"), "--engine", "onnxruntime", "--threads", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_partial(out_dir, proc, min_bytes=10_000)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    litter = leftovers(out_dir)
    assert len(litter) == 1 and ".partial" in litter[0], litter
    short = make_clip(tmp_path / "short.mp4", frames=4)
    r = run_cli("enhance", short.path, "-o", out_dir / "next.mp4", "--model", models_dir / "near_x2.json")
    assert r.code == 0, r.err
    assert leftovers(out_dir) == ["next.mp4"]
    assert any(f"removed {out_dir / litter[0]}" in rec.getMessage() for rec in caplog.records)
