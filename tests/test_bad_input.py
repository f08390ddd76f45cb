"""Bad inputs and impossible outputs: one clear line on stderr, a non-zero exit, nothing left behind.

Each case checks: exit code != 0, exactly one non-empty stderr line and it starts with
"streamsr: error:", no "Traceback", no file at the output path and no temporary file
beside it. A few cases also go through a real ``python -m streamsr`` subprocess.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from synth import decode_video, leftovers, make_audio_only, make_clip

from streamsr.enhance import EnhanceOptions, enhance
from streamsr.errors import ConfigError, InputError, OutputError

ERROR_PREFIX = "streamsr: error:"


def assert_one_line_error(r, out_dir: Path, output: Path | None = None, expect: str | None = None) -> None:
    assert r.code != 0, r
    assert "Traceback" not in r.err
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith(ERROR_PREFIX), r.err
    if expect is not None:
        assert expect in r.err_lines[0], r.err
    if output is not None:
        assert not output.exists()
    assert leftovers(out_dir) == [], "partial or temporary files left behind"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A set of broken and odd inputs, made once."""
    d = tmp_path_factory.mktemp("bad_inputs")
    good = make_clip(d / "good.mp4", frames=40, audio_seconds=1.6)
    data = good.path.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")  # index at the end: cutting loses it
    (d / "half.mp4").write_bytes(data[: len(data) // 2])
    fast = make_clip(d / "fast.mp4", frames=40, audio_seconds=1.6, faststart=True)
    data = fast.path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # index first: frames decode until the cut
    (d / "fast_half.mp4").write_bytes(data[: len(data) // 2])
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    make_audio_only(d / "audio_only.mp4")
    (d / "images_none").mkdir()
    (d / "images_none" / "readme.txt").write_text("no pictures here")
    (d / "bad_image.png").write_text("not a png")
    return {p.name: p for p in d.iterdir()}


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


CASES = [
    # (id, input name, extra args, text the message must contain)
    ("missing", "nope.mp4", [], "not found"),
    ("zero-bytes", "zero.mp4", [], "empty"),
    ("text-as-mp4", "text.mp4", [], "cannot read"),
    ("truncated-moov-lost", "half.mp4", [], "truncated"),  # its index is lost, and the message says why
    ("truncated-mid-data", "fast_half.mp4", [], "truncated"),
    ("audio-only", "audio_only.mp4", [], "no video stream"),
    ("unknown-model", "good.mp4", ["--model", "nosuchmodel"], "unknown model"),
    ("missing-card", "good.mp4", ["--model", "/nonexistent/card.json"], "not found"),
    ("scale-5", "good.mp4", ["--scale", "5"], "--scale"),
    ("unknown-engine", "good.mp4", ["--engine", "tensorflow"], "--engine"),
    ("unknown-codec", "good.mp4", ["--codec", "vp9"], "--codec"),
    ("batch-0", "good.mp4", ["--batch", "0"], "--batch"),
]


@pytest.mark.parametrize("case, name, extra, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_video_input(inputs, models_dir, run_cli, out_dir, case, name, extra, expect):
    src = inputs.get(name, inputs["good.mp4"].parent / name)
    output = out_dir / "up.mp4"
    args = ["enhance", src, "-o", output]
    if "--model" not in extra:
        args += ["--model", models_dir / "near_x2.json"]
    r = run_cli(*args, *extra)
    assert_one_line_error(r, out_dir, output, expect)


def test_output_directory_missing(inputs, models_dir, run_cli, out_dir):
    output = out_dir / "no" / "such" / "up.mp4"
    r = run_cli("enhance", inputs["good.mp4"], "-o", output, "--model", models_dir / "near_x2.json")
    assert_one_line_error(r, out_dir, output, "does not exist")


def test_output_equals_input(inputs, models_dir, run_cli, tmp_path):
    src = tmp_path / "in.mp4"
    shutil.copy(inputs["good.mp4"], src)
    before = src.read_bytes()
    r = run_cli("enhance", src, "-o", src, "--model", models_dir / "near_x2.json")
    assert r.code != 0 and len(r.err_lines) == 1 and r.err_lines[0].startswith(ERROR_PREFIX)
    assert "overwrite the input" in r.err
    assert src.read_bytes() == before
    assert leftovers(tmp_path, ["in.mp4"]) == []
    # the same file under another spelling is still the same file
    r = run_cli("enhance", src, "-o", tmp_path / "." / "in.mp4", "--model", models_dir / "near_x2.json")
    assert r.code != 0 and "overwrite the input" in r.err
    assert src.read_bytes() == before


@pytest.mark.parametrize("name, expect", [("up.png", "video output"), ("up", "video output")])
def test_video_into_an_image_name(inputs, models_dir, run_cli, out_dir, name, expect):
    output = out_dir / name
    r = run_cli("enhance", inputs["good.mp4"], "-o", output, "--model", models_dir / "near_x2.json")
    assert_one_line_error(r, out_dir, output, expect)


def test_output_is_an_existing_directory(inputs, models_dir, run_cli, out_dir):
    (out_dir / "up.mp4").mkdir()
    r = run_cli("enhance", inputs["good.mp4"], "-o", out_dir / "up.mp4", "--model", models_dir / "near_x2.json")
    assert r.code != 0 and len(r.err_lines) == 1 and r.err_lines[0].startswith(ERROR_PREFIX), r.err
    assert leftovers(out_dir, ["up.mp4"]) == [] and not any((out_dir / "up.mp4").iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions (see the /sys case below)")
def test_output_directory_not_writable(inputs, models_dir, run_cli, out_dir):
    out_dir.chmod(0o555)
    try:
        r = run_cli("enhance", inputs["good.mp4"], "-o", out_dir / "up.mp4", "--model", models_dir / "near_x2.json")
    finally:
        out_dir.chmod(0o755)
    assert_one_line_error(r, out_dir, out_dir / "up.mp4", "not writable")


def refusing_directory() -> Path:
    """A directory where even root cannot create files, though os.access says it may
    (as on a read-only mount or root-squashed NFS): sysfs."""
    d = Path("/sys")
    try:
        fd, name = tempfile.mkstemp(dir=d)
    except OSError:
        return d
    os.close(fd)
    os.unlink(name)
    pytest.skip("no directory that refuses new files here (/sys accepts them)")


@pytest.mark.parametrize("kind", ["video", "image", "image-folder"])
def test_output_directory_refuses_files(inputs, models_dir, run_cli, tmp_path, kind):
    """The writability check can pass and creating the file still fail: that is an
    output error too, in one line, not an internal error."""
    d = refusing_directory()
    if kind == "video":
        src, output = inputs["good.mp4"], d / "streamsr-test-up.mp4"
    else:
        folder = tmp_path / "imgs"
        folder.mkdir()
        cv2.imwrite(str(folder / "a.png"), np.full((20, 24, 3), 100, np.uint8))
        src = folder / "a.png" if kind == "image" else folder
        output = d / ("streamsr-test-up.png" if kind == "image" else "streamsr-test-folder")
    r = run_cli("enhance", src, "-o", output, "--model", models_dir / "near_x2.json")
    assert r.code == OutputError.exit_code, r.err
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith(ERROR_PREFIX), r.err
    assert "Traceback" not in r.err
    assert not output.exists()


@pytest.mark.parametrize("name, expect", [("images_none", "no images"), ("bad_image.png", "cannot read")])
def test_bad_image_input(inputs, models_dir, run_cli, out_dir, name, expect):
    r = run_cli("enhance", inputs[name], "-o", out_dir / "result", "--model", models_dir / "near_x2.json")
    assert r.code != 0
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith(ERROR_PREFIX), r.err
    assert expect in r.err
    # an empty result folder may have been made; no image and no temporary file in it
    assert leftovers(out_dir, ["result"]) == []
    assert not (out_dir / "result").exists() or not any((out_dir / "result").iterdir())


def test_odd_frame_sizes_work(models_dir, run_cli, out_dir, tmp_path):
    clip = make_clip(tmp_path / "odd.mkv", width=101, height=75, frames=4, codec="ffv1")
    r = run_cli("enhance", clip.path, "-o", out_dir / "up.mp4", "--model", models_dir / "near_x3.json", "--scale", 3)
    assert r.code == 0, r.err
    assert "Traceback" not in r.err
    video = decode_video(out_dir / "up.mp4")
    assert (video.width, video.height) == (304, 226)
    assert leftovers(out_dir, ["up.mp4"]) == []


def test_failure_mid_run_leaves_nothing(inputs, models_dir, run_cli, out_dir, monkeypatch):
    """The backend dies on its 5th call, after frames were encoded into the temporary file."""
    from streamsr.backends.onnxruntime_backend import OnnxRuntimeBackend

    real = OnnxRuntimeBackend.infer
    calls = {"n": 0}

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated engine failure")
        return real(self, x)

    monkeypatch.setattr(OnnxRuntimeBackend, "infer", flaky)
    output = out_dir / "up.mp4"
    r = run_cli("enhance", inputs["good.mp4"], "-o", output, "--model", models_dir / "near_x2.json",
                "--engine", "onnxruntime")
    assert_one_line_error(r, out_dir, output, "simulated engine failure")


def test_api_errors_are_typed(inputs, models_dir, tmp_path):
    """The library raises the error family (the CLI is not the only caller)."""
    card = str(models_dir / "near_x2.json")
    with pytest.raises(ConfigError):
        enhance(inputs["good.mp4"], tmp_path / "a.mp4", EnhanceOptions(scale=5, model=card))
    with pytest.raises(InputError):
        enhance(inputs["text.mp4"], tmp_path / "a.mp4", EnhanceOptions(model=card))
    with pytest.raises(OutputError):
        enhance(inputs["good.mp4"], tmp_path / "no" / "a.mp4", EnhanceOptions(model=card))
    assert leftovers(tmp_path) == []


SUBPROCESS_CASES = [
    ("missing", "nope.mp4", "not found"),
    ("text-as-mp4", "text.mp4", "cannot read"),
    ("truncated-mid-data", "fast_half.mp4", "truncated"),
    ("audio-only", "audio_only.mp4", "no video stream"),
]


@pytest.mark.parametrize("case, name, expect", SUBPROCESS_CASES, ids=[c[0] for c in SUBPROCESS_CASES])
def test_no_traceback_from_the_real_command(inputs, models_dir, out_dir, case, name, expect):
    src = inputs.get(name, inputs["good.mp4"].parent / name)
    output = out_dir / "up.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "streamsr", "enhance", str(src), "-o", str(output),
         "--model", str(models_dir / "near_x2.json")],
        capture_output=True, text=True, timeout=120,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX) and expect in lines[0], proc.stderr
    assert proc.stdout == ""
    assert leftovers(out_dir) == []
