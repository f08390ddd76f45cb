"""Interlaced input is detected and deinterlaced (bwdif) before the model, at frame rate by
default or field rate on request, with exact timestamps either way.

The clips (tests/synth.py) hold two fields per frame taken half a frame apart, with a bar
moving 7 pixels per field: woven together, its edges comb; deinterlaced, they do not, and the
bar's position tells which field a frame was built from.
"""
from __future__ import annotations

import logging
from fractions import Fraction

import pytest

from synth import bar_left, comb_energy, decode_video, measured_bar_left

FRAMES = 6


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def interlaced_clip(clip_factory, order: str = "tff", suffix: str = "mp4"):
    clip = clip_factory(f"interlaced_{order}.{suffix}", frames=FRAMES, interlaced=order, crf=8)
    src = decode_video(clip.path)
    assert all(src.interlaced)  # flagged, as a DVR's H.264 is
    assert min(comb_energy(y) for y in src.lumas) > 15  # and visibly combed
    return clip, src


@pytest.mark.parametrize("order", ["tff", "bff"])
def test_interlaced_is_deinterlaced_at_frame_rate(clip_factory, model_args, run_cli, out_dir, caplog, order):
    clip, src = interlaced_clip(clip_factory, order)
    out = out_dir / "up.mp4"
    with caplog.at_level(logging.WARNING):
        r = run_cli("enhance", clip.path, "-o", out, *model_args(2))
    assert r.code == 0, r.err
    assert any("interlaced" in rec.getMessage() and "bwdif" in rec.getMessage() for rec in caplog.records)
    video = decode_video(out)
    assert len(video.lumas) == FRAMES
    assert video.times == src.times  # the same timestamps, exactly
    assert not any(video.interlaced)
    assert max(comb_energy(y[::2, ::2]) for y in video.lumas) < 6
    # each frame shows its first field's moment (bar at field 2i), whichever field comes first
    for i, y in enumerate(video.lumas):
        assert abs(measured_bar_left(y, 2) - bar_left(2 * i, clip.size[0])) <= 2.5, i


@pytest.mark.parametrize("order", ["tff", "bff"])
def test_field_rate_doubles_frames_with_exact_timestamps(clip_factory, model_args, run_cli, out_dir, order):
    clip, src = interlaced_clip(clip_factory, order)
    out = out_dir / "up.mp4"
    r = run_cli("enhance", clip.path, "-o", out, *model_args(2), "--deinterlace", "field")
    assert r.code == 0, r.err
    video = decode_video(out)
    assert len(video.lumas) == 2 * FRAMES
    step = src.times[1] - src.times[0]
    want = [t + k * step / 2 for t in src.times for k in (0, 1)]
    assert video.times == want
    assert video.average_rate == 2 * Fraction(25)
    assert not any(video.interlaced)
    # field order respected: the bar advances one field per output frame, never back
    for k, y in enumerate(video.lumas):
        assert abs(measured_bar_left(y, 2) - bar_left(k, clip.size[0])) <= 2.5, k


def test_field_rate_with_variable_frame_rate(clip_factory, model_args, run_cli, out_dir):
    """Second fields sit exactly halfway to the next frame, however irregular the frames are
    (the last one halfway through the previous frame's duration)."""
    pts = [0, 3000, 7500, 9000, 15000, 18600]  # 1/90000: 33.3, 50, 16.7, 66.7, 40 ms
    clip = clip_factory("interlaced_vfr.mp4", frames=FRAMES, interlaced="tff", pts=pts)
    src = decode_video(clip.path)
    out = out_dir / "up.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2), "--deinterlace", "field").code == 0
    video = decode_video(out)
    nxt = src.times[1:] + [src.times[-1] + (src.times[-1] - src.times[-2])]
    want = [x for t, n in zip(src.times, nxt) for x in (t, (t + n) / 2)]
    assert video.times == want


def test_deinterlace_off_keeps_the_old_behaviour(clip_factory, model_args, run_cli, out_dir):
    """The check above can fail: without deinterlacing, the combs are still there."""
    clip, _ = interlaced_clip(clip_factory)
    out = out_dir / "up.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2), "--deinterlace", "off").code == 0
    video = decode_video(out)
    assert len(video.lumas) == FRAMES
    assert min(comb_energy(y[::2, ::2]) for y in video.lumas) > 12


def test_progressive_input_is_left_alone(clip_factory, model_args, run_cli, out_dir, caplog):
    clip = clip_factory("cfr8.mp4", frames=8)
    with caplog.at_level(logging.WARNING):
        assert run_cli("enhance", clip.path, "-o", out_dir / "up.mp4", *model_args(2)).code == 0
    assert not any("interlaced" in rec.getMessage() for rec in caplog.records)


def test_unflagged_input_deinterlaced_on_request(clip_factory, model_args, run_cli, out_dir):
    """Some DVRs do not flag their fields: --deinterlace frame forces it."""
    clip = clip_factory("woven_unflagged.mkv", frames=FRAMES, interlaced="tff", codec="ffv1")
    src = decode_video(clip.path)
    assert not any(src.interlaced)
    out = out_dir / "up.mkv"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2), "--deinterlace", "frame").code == 0
    video = decode_video(out)
    assert video.times == src.times
    assert max(comb_energy(y[::2, ::2]) for y in video.lumas) < 6
