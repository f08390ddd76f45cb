"""Ctrl-C, and every termination signal that can be caught (SIGTERM from docker stop,
systemd or timeout; SIGHUP from a closed terminal; SIGQUIT), during `streamsr enhance`: a
valid file of the frames done, or nothing, one line saying which, and the shell's exit status
128 + the signal's number; never a corrupt file at the target and never a temporary file
beside it."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from synth import decode_video, leftovers, make_clip, packets, read_index

FRAMES = 400


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", width=320, height=240, frames=FRAMES,
                     audio_seconds=FRAMES / 25)


def wait_for_partial(folder: Path, proc: subprocess.Popen, min_bytes: int, timeout_s: float = 60) -> int:
    """Size of the temporary output once it holds ``min_bytes``; fails if the run ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted; make the clip longer"
        for name in os.listdir(folder):
            if ".partial" in name:
                try:
                    size = (folder / name).stat().st_size
                except FileNotFoundError:
                    continue
                if size >= min_bytes:
                    return size
        time.sleep(0.02)
    raise AssertionError("no partial output appeared")


def _default_signals() -> None:
    """The child as a foreground run would be: a shell starts background jobs (``pytest &``)
    with SIGINT ignored, and streamsr rightly leaves an ignored signal ignored."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT],
                         ids=lambda s: signal.Signals(s).name)
def test_signal_leaves_a_valid_file_of_the_frames_done(long_clip, models_dir, tmp_path, sig):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "up.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamsr", "enhance", str(long_clip.path), "-o", str(output),
         "--model", str(models_dir / "near_x2.json"), "--engine", "onnxruntime", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals,
    )
    try:
        wait_for_partial(out_dir, proc, min_bytes=100_000)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"streamsr: interrupted by {name}"), err
    assert leftovers(out_dir, ["up.mp4"]) == [], "temporary file left behind"
    if not output.exists():  # interrupted while finishing: nothing is also an honest outcome
        assert "nothing was written" in err
        return
    match = re.search(r"holds the (\d+) frames done", err)
    assert match, err
    done = int(match.group(1))
    assert 0 < done < FRAMES
    video = decode_video(output)  # decodes to the end: the file was finalised
    assert [read_index(y, long_clip.size, 2) for y in video.lumas] == list(range(done))
    # the copied audio stops where the video stops, not an hour of sound after the last frame
    audio = packets(output, "audio")
    assert audio, "the audio track was lost"
    audio_end = audio[-1][0] * audio[-1][2]
    video_end = video.times[-1] + Fraction(1, 25)
    assert audio_end <= video_end + Fraction(1, 5), (float(audio_end), float(video_end))
