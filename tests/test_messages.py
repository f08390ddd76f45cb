"""Encoder options and output names that cannot work fail at once, each with its own
message, before the model loads (a missing model card would otherwise be the error), and
never as an internal error or a complaint about the container after the work is done.
Pipes are refused in one plain line."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from synth import leftovers, make_clip

NO_MODEL = ["--model", "/nonexistent/card.json"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("msg") / "in.mp4", frames=4, audio_seconds=0.16)


def one_line(r, code: int, *expect: str) -> None:
    assert r.code == code, r.err
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("streamsr: error:"), r.err
    assert "Traceback" not in r.err and "internal error" not in r.err
    assert ".partial" not in r.err and "streamsr-check-" not in r.err  # no scratch or temporary names
    for text in expect:
        assert text in r.err_lines[0], r.err


CASES = [
    # (id, output name, extra args, exit code, what the message must say)
    ("crf-too-high", "up.mp4", ["--crf", "60"], 2, ["--crf 60 is out of range", "0", "51"]),
    ("crf-negative", "up.mp4", ["--crf", "-1"], 2, ["--crf -1 is out of range"]),
    ("unknown-preset", "up.mp4", ["--preset", "warp"], 2, ["unknown --preset 'warp'", "veryfast"]),
    ("hevc-preset", "up.mkv", ["--codec", "hevc", "--preset", "turbo"], 2, ["unknown --preset 'turbo' for hevc"]),
    # containers outside the tested allow-list (sinks/containers.py) are refused by name
    ("webm-h264", "up.webm", [], 3, ["cannot write video as .webm", "supported containers: .mp4"]),
    ("gif", "up.gif", [], 3, ["cannot write video as .gif"]),
    ("unknown-extension", "up.xyz", [], 3, ["cannot write video as .xyz"]),
    ("mpeg-ps", "up.mpg", [], 3, ["cannot write", ".mpg"]),
    ("raw-h264", "up.h264", [], 3, ["cannot write video as .h264"]),
    ("avi-hevc", "up.avi", ["--codec", "hevc"], 3, ["AVI (.avi) cannot hold hevc video"]),
]


def test_audio_the_container_cannot_hold_is_named_before_the_model_loads(tmp_path, run_cli):
    """Opus audio cannot be copied into AVI: said at once, naming the stream's codec."""
    opus = make_clip(tmp_path / "opus.mkv", frames=4, audio_seconds=0.16, audio_codec="libopus")
    one_line(run_cli("enhance", opus.path, "-o", tmp_path / "up.avi", *NO_MODEL), 3,
             "cannot copy the audio stream (opus) into .avi")
    assert leftovers(tmp_path, ["opus.mkv"]) == []


@pytest.mark.parametrize("case, name, extra, code, expect", CASES, ids=[c[0] for c in CASES])
def test_checked_before_the_model_loads(clip, tmp_path, run_cli, case, name, extra, code, expect):
    r = run_cli("enhance", clip.path, "-o", tmp_path / name, *NO_MODEL, *extra)
    one_line(r, code, *expect)
    assert leftovers(tmp_path) == []


def test_stdin_dash_is_refused(tmp_path, run_cli):
    one_line(run_cli("enhance", "-", "-o", tmp_path / "up.mp4", *NO_MODEL), 2, "pipe", "not supported")


def test_stdout_dash_is_refused(clip, run_cli):
    one_line(run_cli("enhance", clip.path, "-o", "-", *NO_MODEL), 3, "pipe", "not supported")


def test_a_named_pipe_is_refused(tmp_path, run_cli):
    fifo = tmp_path / "feed.mp4"
    os.mkfifo(fifo)
    one_line(run_cli("enhance", fifo, "-o", tmp_path / "up.mp4", *NO_MODEL), 2, "pipe", "not supported")


def test_dev_stdin_from_a_pipe_is_refused_by_the_real_command(clip, tmp_path):
    """`cat clip | streamsr enhance /dev/stdin ...`: one line, non-zero, and it does not hang."""
    proc = subprocess.run(
        [sys.executable, "-m", "streamsr", "enhance", "/dev/stdin", "-o", str(tmp_path / "up.mp4"), *NO_MODEL],
        input=clip.path.read_bytes(), capture_output=True, timeout=120,
    )
    err = proc.stderr.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "pipe" in lines[0] and "not supported" in lines[0], err
    assert leftovers(tmp_path) == []
