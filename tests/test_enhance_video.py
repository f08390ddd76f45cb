"""`streamsr enhance` on video files, end to end on the CPU with a tiny content-preserving model.

Every clip carries its frame index in the picture (tests/synth.py), so order, drops and
duplicates are checked on the decoded output, not on counters the runtime reports itself.
"""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

from synth import decode_video, leftovers, packets, read_index, stream_types, vfr_pts


def indices(video, src_size, scale, x0: int = 0) -> list[int]:
    return [read_index(y[:, x0:], src_size, scale) for y in video.lumas]


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.mark.parametrize("batch", [1, 4])
def test_every_frame_written_once_in_order(clip_factory, model_args, run_cli, out_dir, batch):
    clip = clip_factory("cfr30.mp4", frames=30)
    out = out_dir / "up.mp4"
    r = run_cli("enhance", clip.path, "-o", out, *model_args(2), "--batch", batch)
    assert r.code == 0, r.err
    video = decode_video(out)
    assert (video.width, video.height) == (256, 192)
    assert indices(video, clip.size, 2) == list(range(30))
    assert "30 of 30" in r.out
    assert leftovers(out_dir, ["up.mp4"]) == []


def test_constant_rate_timestamps_kept(clip_factory, model_args, run_cli, out_dir):
    clip = clip_factory("cfr30.mp4", frames=30)
    out = out_dir / "up.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    src, video = decode_video(clip.path), decode_video(out)
    assert video.times == src.times
    assert video.times[1] - video.times[0] == Fraction(1, 25)


def test_vfr_pts_exact_in_mp4(clip_factory, model_args, run_cli, out_dir):
    """MP4 in and out: the output video stream takes the input's time base (1/90000),
    so every decoded pts is the same integer as in the input: no rounding at all."""
    clip = clip_factory("vfr.mp4", frames=24, pts=vfr_pts(24))
    out = out_dir / "up.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    src, video = decode_video(clip.path), decode_video(out)
    assert src.pts == clip.pts  # the synthetic clip itself is what we meant
    assert video.time_base == Fraction(1, 90000)
    assert video.pts == src.pts
    assert indices(video, clip.size, 2) == list(range(24))


def test_vfr_pts_to_mkv_within_a_millisecond(clip_factory, model_args, run_cli, out_dir):
    """Matroska stores milliseconds, and its muxer makes timestamps non-negative by shifting
    every stream by one constant (here the AAC priming, 1024 samples = 21.3 ms, since the
    copied audio starts before the first frame; MP4 keeps that in an edit list instead).
    So what is kept is the timing relative to that shift: each frame sits at its input time
    plus the common shift, rounded to 1 ms, and the audio keeps its offset to the video."""
    clip = clip_factory("vfr_audio.mp4", frames=24, pts=vfr_pts(24), audio_seconds=1.0)
    out = out_dir / "up.mkv"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    src, video = decode_video(clip.path), decode_video(out)
    assert video.time_base == Fraction(1, 1000)
    assert len(video.times) == len(src.times)
    shift = video.times[0] - src.times[0]
    assert 0 <= shift <= Fraction(1024, 48000) + Fraction(1, 1000)
    errors = [abs(o - (i + shift)) for o, i in zip(video.times, src.times)]
    assert max(errors) <= Fraction(1, 1000), [float(e) for e in errors]
    # the same irregular durations, to the millisecond
    durations = [float(b - a) for a, b in zip(src.times, src.times[1:])]
    assert len(set(round(d, 3) for d in durations)) > 3  # really variable
    src_a, out_a = packets(clip.path, "audio"), packets(out, "audio")
    assert abs((out_a[0][0] * out_a[0][2] - video.times[0]) - (src_a[0][0] * src_a[0][2] - src.times[0])) \
        <= Fraction(1, 1000)
    assert indices(video, clip.size, 2) == list(range(24))


def test_vfr_from_mkv_exact(clip_factory, model_args, run_cli, out_dir):
    """A millisecond VFR Matroska input: pts in 1/1000 survive exactly into MP4 and MKV."""
    pts_ms = [0, 33, 83, 100, 167, 207, 307, 340, 390, 407]
    clip = clip_factory("vfr_ms.mkv", frames=len(pts_ms), pts=pts_ms, time_base=Fraction(1, 1000))
    src = decode_video(clip.path)
    assert src.pts == pts_ms
    for name in ("up.mp4", "up.mkv"):
        assert run_cli("enhance", clip.path, "-o", out_dir / name, *model_args(2)).code == 0
        assert decode_video(out_dir / name).times == src.times, name


def audio_span(pk) -> Fraction:
    return sum((Fraction(d) * tb for _, d, tb, _ in pk), Fraction(0))


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_audio_copied_untouched(clip_factory, model_args, run_cli, out_dir, container):
    clip = clip_factory(f"audio.{container}", frames=25, audio_seconds=1.0)
    out = out_dir / f"up.{container}"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    assert stream_types(out) == ["video", "audio"]
    src_a, out_a = packets(clip.path, "audio"), packets(out, "audio")
    assert len(out_a) == len(src_a) > 40  # 1 s of 48 kHz AAC: 47 packets
    assert [p[3] for p in out_a] == [p[3] for p in src_a]  # payloads bit for bit
    assert audio_span(out_a) == audio_span(src_a)
    assert abs(audio_span(src_a) - 1) < Fraction(1, 20)  # the tone is one second long
    # in sync: the audio starts at the same time relative to the first video frame
    src_v, out_v = decode_video(clip.path), decode_video(out)
    src_offset = src_a[0][0] * src_a[0][2] - src_v.times[0]
    out_offset = out_a[0][0] * out_a[0][2] - out_v.times[0]
    assert abs(out_offset - src_offset) <= Fraction(1, 1000)


def test_subtitles_copied_into_mkv(clip_factory, model_args, run_cli, out_dir):
    cues = [(0.1, 0.3, "first cue"), (0.5, 0.7, "second cue")]
    clip = clip_factory("subs.mkv", frames=25, audio_seconds=1.0, subtitles=cues)
    out = out_dir / "up.mkv"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    assert stream_types(out) == ["video", "audio", "subtitle"]
    subs = packets(out, "subtitle")
    assert [p[3].decode() for p in subs] == ["first cue", "second cue"]
    assert [p[0] * p[2] for p in subs] == [Fraction(1, 10), Fraction(1, 2)]


def test_subtitles_into_mp4_is_a_clear_error(clip_factory, model_args, run_cli, out_dir):
    """SubRip cannot go into MP4 untouched (it would need mov_text): say so, suggest .mkv,
    and leave nothing behind."""
    clip = clip_factory("subs.mkv", frames=25, audio_seconds=1.0,
                        subtitles=[(0.1, 0.3, "first cue"), (0.5, 0.7, "second cue")])
    r = run_cli("enhance", clip.path, "-o", out_dir / "up.mp4", *model_args(2))
    assert r.code != 0
    assert r.err_lines == [r.err_lines[0]] and r.err_lines[0].startswith("streamsr: error:")
    assert ".mkv" in r.err
    assert leftovers(out_dir) == []


@pytest.mark.parametrize(
    "name, kwargs, want",
    [
        # (color_range, colorspace, primaries, trc): 1 = tv/limited or BT.709, 2 = pc/full or unspecified
        ("bt709.mp4", dict(bt709=True), (1, 1, 1, 1)),
        ("full709.mp4", dict(pix_fmt="yuvj420p", full_range=True, bt709=True), (2, 1, 1, 1)),
    ],
)
def test_colour_tags_carried_over(clip_factory, model_args, run_cli, out_dir, name, kwargs, want):
    clip = clip_factory(name, frames=6, **kwargs)
    src = decode_video(clip.path)
    assert (src.color_range, src.colorspace, src.color_primaries, src.color_trc) == want
    out = out_dir / "up.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    video = decode_video(out)
    assert (video.color_range, video.colorspace, video.color_primaries, video.color_trc) == want
    # full range really is full range: the black/white code cells reach 0..255, not 16..235
    code = video.lumas[0][:48]  # the two rows of code cells (12 px each at 96 high, x2)
    lo, hi = np.percentile(code, [5, 95])
    if want[0] == 2:
        assert lo < 6 and hi > 249, (lo, hi)
    else:
        assert 12 < lo < 20 and 230 < hi < 240, (lo, hi)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_carried_over(clip_factory, model_args, run_cli, out_dir, rotation):
    clip = clip_factory(f"rot{rotation}.mp4", frames=4, rotation=rotation)
    src = decode_video(clip.path)
    assert src.rotation % 360 == rotation % 360
    out = out_dir / "up.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    video = decode_video(out)
    assert video.rotation % 360 == src.rotation % 360  # PyAV reads 180 back as -180
    assert (video.width, video.height) == (256, 192)  # stored unrotated, like the input
    assert indices(video, clip.size, 2) == [0, 1, 2, 3]


def test_hevc_on_request(clip_factory, model_args, run_cli, out_dir):
    clip = clip_factory("cfr8_audio.mp4", frames=8, audio_seconds=0.4)
    out = out_dir / "up.mp4"
    r = run_cli("enhance", clip.path, "-o", out, *model_args(2), "--codec", "hevc")
    assert r.code == 0, r.err
    video = decode_video(out)
    assert video.codec == "hevc"
    assert indices(video, clip.size, 2) == list(range(8))
    assert len(packets(out, "audio")) == len(packets(clip.path, "audio"))


ODD = [((97, 61), "ffv1", "yuv420p"), ((101, 75), "libx264", "yuv444p")]


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("size, codec, pix_fmt", ODD, ids=["97x61-yuv420p", "101x75-yuv444p"])
def test_odd_sizes(clip_factory, model_args, run_cli, out_dir, size, codec, pix_fmt, scale):
    """Odd inputs work at every scale. 4:2:0 output needs even sizes, so an odd upscaled size
    is padded by one pixel (the last row/column repeated): 97x61 x3 = 291x183 -> 292x184.
    4:4:4 stays 4:4:4 (it used to become 4:2:0) and needs no padding: 101x75 x3 = 303x225."""
    clip = clip_factory(f"odd{size[0]}_{pix_fmt}.mkv", width=size[0], height=size[1], frames=5,
                        codec=codec, pix_fmt=pix_fmt)
    out = out_dir / "up.mp4"
    r = run_cli("enhance", clip.path, "-o", out, *model_args(scale))
    assert r.code == 0, r.err
    video = decode_video(out)
    w, h = size[0] * scale, size[1] * scale
    if pix_fmt == "yuv420p":
        assert (video.width, video.height) == (w + w % 2, h + h % 2)
    else:
        assert (video.width, video.height) == (w, h)
    assert video.pix_fmt == pix_fmt
    assert indices(video, clip.size, scale) == list(range(5))
    if w % 2 and pix_fmt == "yuv420p":  # the padded column repeats its neighbour (up to coding noise)
        y = video.lumas[0].astype(int)
        assert abs(y[:, -1] - y[:, -2]).mean() < 4


@pytest.mark.parametrize("scale", [2, 3])
def test_compare_is_three_panels_wide(clip_factory, model_args, run_cli, out_dir, scale):
    clip = clip_factory("odd97_yuv420p.mkv", width=97, height=61, frames=5, codec="ffv1")
    out = out_dir / "cmp.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(scale), "--compare").code == 0
    video = decode_video(out)
    w, h = 97 * scale, 61 * scale
    panel = w + w % 2
    assert (video.width, video.height) == (3 * panel, h + h % 2)
    for i in range(3):  # input (nearest), bicubic, model: each shows the same frame
        assert indices(video, clip.size, scale, x0=i * panel) == list(range(5)), i


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_output_has_ordinary_permissions(clip_factory, model_args, run_cli, out_dir, umask):
    clip = clip_factory("cfr8_audio.mp4", frames=8, audio_seconds=0.4)
    out = out_dir / "up.mp4"
    old = os.umask(umask)
    try:
        assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_existing_output_is_replaced_whole_with_force(clip_factory, model_args, run_cli, out_dir):
    """Without --force an existing output is refused (tests/test_overwrite.py); with it, it
    is replaced whole."""
    clip = clip_factory("cfr8_audio.mp4", frames=8, audio_seconds=0.4)
    out = out_dir / "up.mp4"
    out.write_bytes(b"old contents " * 1000)
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2), "--force").code == 0
    assert indices(decode_video(out), clip.size, 2) == list(range(8))
    assert leftovers(out_dir, ["up.mp4"]) == []


def test_auto_engine_runs_a_video(clip_factory, model_args, run_cli, out_dir):
    clip = clip_factory("cfr8_audio.mp4", frames=8, audio_seconds=0.4)
    out = out_dir / "up.mkv"
    r = run_cli("enhance", clip.path, "-o", out, *model_args(2, engine="auto"))
    assert r.code == 0, r.err
    assert indices(decode_video(out), clip.size, 2) == list(range(8))
