"""Frames the decoder cannot give back are counted and named, never dropped in silence.

The clips have a key frame every 12 frames; damaging the first packet loses the whole first
group of pictures (12 frames) or leaves a frame with concealed errors. By default (`warn`) the
other frames are written, a warning line says how many were lost, and the exit status is 0;
`--on-decode-error fail` makes it an error that leaves nothing behind.
"""
from __future__ import annotations

import re

import pytest

from damage import corrupt_first_packet, write_h264
from synth import decode_video, leftovers, read_index

FRAMES, GOP, SIZE = 60, 12, (128, 96)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    d = tmp_path_factory.mktemp("damaged")
    ts = write_h264(d / "whole.ts", frames=FRAMES, gop=GOP)
    mp4 = write_h264(d / "whole.mp4", frames=FRAMES, gop=GOP)
    mkv = write_h264(d / "whole.mkv", frames=FRAMES, gop=GOP)
    return {
        # the first key frame zeroed: the decoder drops its group in silence (the 48 of 60)
        "silent.mkv": corrupt_first_packet(mkv, d / "silent.mkv", mode="zero"),
        # garbage in the first key frame: the decoder rejects it, and its group follows
        "rejected.mp4": corrupt_first_packet(mp4, d / "rejected.mp4", mode="random"),
        "rejected.ts": corrupt_first_packet(ts, d / "rejected.ts", mode="zero"),
        # the second key frame zeroed: its group is skipped by the demuxer, mid-file
        "middle.mkv": corrupt_first_packet(mkv, d / "middle.mkv", mode="zero", index=GOP),
        # the tail of the first key frame: decoded, errors concealed
        "concealed.mkv": corrupt_first_packet(mkv, d / "concealed.mkv", mode="random", start=0.5),
    }


def run(run_cli, models_dir, src, output, *extra):
    return run_cli("enhance", src, "-o", output, "--model", models_dir / "near_x2.json", "--engine", "onnxruntime",
                   *extra)


@pytest.mark.parametrize("name", ["silent.mkv", "rejected.mp4", "rejected.ts"])
def test_lost_frames_are_counted_and_the_rest_written(damaged, name, run_cli, models_dir, tmp_path):
    output = tmp_path / "up.mkv"
    r = run(run_cli, models_dir, damaged[name], output)
    assert r.code == 0, r.err
    written = [read_index(y, SIZE, 2) for y in decode_video(output).lumas]
    assert written == list(range(FRAMES - len(written), FRAMES)) and len(written) == FRAMES - GOP
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("streamsr: warning:"), r.err
    lost = int(re.search(r"(\d+) frames? could not be decoded", r.err).group(1))
    assert GOP - 1 <= lost <= GOP, r.err  # a zeroed PES header can merge two packets into one
    assert "--on-decode-error fail" in r.err


def test_a_group_lost_mid_file_is_counted(damaged, run_cli, models_dir, tmp_path):
    output = tmp_path / "up.mkv"
    r = run(run_cli, models_dir, damaged["middle.mkv"], output)
    assert r.code == 0, r.err
    written = [read_index(y, SIZE, 2) for y in decode_video(output).lumas]
    assert written == list(range(GOP)) + list(range(2 * GOP, FRAMES))
    assert f"{GOP} frames could not be decoded" in r.err and "the first at 0.48 s" in r.err, r.err


def test_concealed_damage_is_reported(damaged, run_cli, models_dir, tmp_path):
    output = tmp_path / "up.mkv"
    r = run(run_cli, models_dir, damaged["concealed.mkv"], output)
    assert r.code == 0, r.err
    assert len(decode_video(output).lumas) == FRAMES
    assert "decoded with errors" in r.err and r.err_lines[0].startswith("streamsr: warning:"), r.err


@pytest.mark.parametrize("name", ["silent.mkv", "middle.mkv", "rejected.mp4", "rejected.ts", "concealed.mkv"])
def test_fail_policy_is_an_error_that_leaves_nothing(damaged, name, run_cli, models_dir, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = run(run_cli, models_dir, damaged[name], out_dir / "up.mkv", "--on-decode-error", "fail")
    assert r.code == 2, r.err
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("streamsr: error:"), r.err
    assert "stopped (--on-decode-error fail)" in r.err and "Traceback" not in r.err
    assert leftovers(out_dir) == []


def test_clean_input_has_no_warning(tmp_path, run_cli, models_dir):
    src = write_h264(tmp_path / "clean.ts", frames=24, gop=GOP)
    r = run(run_cli, models_dir, src, tmp_path / "up.mkv", "--on-decode-error", "fail")
    assert r.code == 0 and r.err == "", r.err
