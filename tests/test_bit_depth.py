"""Bit depth, chroma subsampling and colour tags survive `enhance` (they used to become 8-bit 4:2:0).

Clips are made here through PyAV: libx264 writes 8/10-bit 4:2:0, 4:2:2 and 4:4:4 and gray,
libx265 10/12-bit. The ``exact`` tiny model is a pure nearest-neighbour upscale, so the
output's luma can be compared with the input's to within coding noise.
"""
from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from synth import chroma_planes, chroma_ramps, decode_video, read_index


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def indices(video, size, scale) -> list[int]:
    return [read_index(y, size, scale) for y in video.lumas]


# -- normalisation -------------------------------------------------------------------------
def test_ten_bit_limited_range_maps_like_eight_bit():
    """10-bit limited black/white (64/940) reach the model as 8-bit's 16/255 and 235/255,
    not 64/1023 and 940/1023."""
    from streamsr.colour import LumaScale, luma_to_unit

    ten = LumaScale(bits=10, full_range=False)
    x = luma_to_unit(np.array([64, 940, 1020], np.uint16), ten)
    assert np.allclose(x, [16 / 255, 235 / 255, 1.0])
    eight = luma_to_unit(np.array([16, 235], np.uint8), LumaScale())
    assert np.allclose(x[:2], eight)


def test_full_range_maps_onto_the_models_limited_range_unit():
    """Full-range black and white reach the model where limited-range ones do (16/255, 235/255):
    the levels it was trained on, so a JPEG-range camera and an image look like any other input."""
    from streamsr.colour import LumaScale, luma_to_unit, unit_to_luma

    for bits, peak in ((8, 255), (10, 1023), (16, 65535)):
        full = LumaScale(bits=bits, full_range=True)
        x = luma_to_unit(np.array([0, peak], np.uint16 if bits > 8 else np.uint8), full)
        assert np.allclose(x, [16 / 255, 235 / 255]), bits
        assert list(unit_to_luma(x, full)) == [0, peak]


@pytest.mark.parametrize("bits, full", [(8, False), (10, False), (10, True), (12, False), (16, True)])
def test_every_code_round_trips(bits, full):
    from streamsr.colour import LumaScale, luma_to_unit, unit_to_luma

    scale = LumaScale(bits=bits, full_range=full)
    codes = np.arange(1 << bits, dtype=scale.dtype)
    back = unit_to_luma(luma_to_unit(codes, scale), scale)
    assert back.dtype == scale.dtype and np.array_equal(back, codes)


def test_backend_runs_on_full_precision_luma(models_dir):
    from streamsr.backends.base import Backend
    from streamsr.colour import LumaScale
    from streamsr.types import ModelCard

    class _Recorder(Backend):
        """Records what the network would see; returns it nearest-upscaled."""

        name = "recorder"

        def infer(self, x):
            self.seen = x.copy()
            return np.repeat(np.repeat(x, self.card.scale, axis=2), self.card.scale, axis=3)

    backend = _Recorder(ModelCard.load(models_dir / "exact_x2.json"), threads=1)
    backend.luma = LumaScale(bits=10)
    batch = np.array([[[64, 65, 66, 67], [937, 938, 939, 940]]], np.uint16)
    out = backend.run(batch)
    assert np.allclose(backend.seen[0, 0], batch[0] / 1020.0)  # every 10-bit step reaches the model
    assert out.dtype == np.uint16 and np.array_equal(out[0, ::2, ::2], batch[0])


# -- layouts -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, want", [
    ("nv12", "yuv420p"), ("p010le", "yuv420p10le"), ("yuyv422", "yuv422p"), ("yuvj444p", "yuv444p"),
    ("rgb24", "yuv444p"), ("gray10le", "gray10le"), ("yuv411p", "yuv411p"), ("y210le", "yuv422p10le"),
])
def test_working_layout_keeps_depth_and_chroma(name, want):
    from streamsr.pixfmt import working_layout

    assert working_layout(name).name == want


X264 = ["yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12", "yuv420p10le", "yuv422p10le", "yuv444p10le",
        "gray", "gray10le"]


@pytest.mark.parametrize("want, got", [
    ("yuv422p10le", "yuv422p10le"), ("yuv420p12le", "yuv420p10le"), ("yuv422p12le", "yuv422p10le"),
    ("yuv440p", "yuv444p"), ("yuv411p", "yuv422p"), ("yuv444p16le", "yuv444p10le"),
])
def test_nearest_encoder_format(want, got):
    from streamsr.pixfmt import nearest_supported, working_layout

    assert nearest_supported(working_layout(want), X264).name == got


def test_nearest_prefers_depth_and_chroma_over_nothing():
    """An 8-bit-only encoder keeps 4:2:2 rather than falling back to 4:2:0."""
    from streamsr.pixfmt import PixelLayout, nearest_supported

    only8 = ["yuv420p", "yuv422p", "yuv444p"]
    assert nearest_supported(PixelLayout(bits=10, log2_chroma_w=1, log2_chroma_h=0), only8).name == "yuv422p"


# -- end to end ----------------------------------------------------------------------------
@pytest.mark.parametrize("pix_fmt, codec, out_name", [
    ("yuv420p10le", "libx264", "up.mp4"),
    ("yuv422p", "libx264", "up.mkv"),
    ("yuv444p", "libx264", "up.mp4"),
    ("yuv422p10le", "libx264", "up.mkv"),
    ("yuv420p10le", "libx265", "up.mkv"),
])
def test_layout_kept(clip_factory, model_args, run_cli, out_dir, pix_fmt, codec, out_name):
    clip = clip_factory(f"{pix_fmt}_{codec}.mkv", frames=4, pix_fmt=pix_fmt, codec=codec)
    assert decode_video(clip.path).pix_fmt == pix_fmt  # the clip is what we meant
    out = out_dir / out_name
    args = ["--codec", "hevc"] if codec == "libx265" else []
    r = run_cli("enhance", clip.path, "-o", out, *model_args(2, name="exact"), *args)
    assert r.code == 0, r.err
    assert "cannot encode" not in r.err
    video = decode_video(out)
    assert video.pix_fmt == pix_fmt
    assert indices(video, clip.size, 2) == [0, 1, 2, 3]
    # chroma: stored at the input's subsampling, its content upscaled (ramps stay ramps)
    cb, cr = chroma_planes(out)
    want_cb, want_cr = chroma_ramps(pix_fmt, 2 * clip.size[0], 2 * clip.size[1])
    assert cb.shape == want_cb.shape and cr.shape == want_cr.shape
    gain = 4 if "10" in pix_fmt else 1
    assert np.abs(cb.astype(float) - want_cb).mean() < 2 * gain
    assert np.abs(cr.astype(float) - want_cr).mean() < 2 * gain


def ramp_clip(path, frames: int = 3, width: int = 128, height: int = 96):
    """A 10-bit clip of a smooth diagonal ramp whose low two bits vary (8-bit cannot hold it)."""
    yy, xx = np.mgrid[0:height, 0:width]
    luma = (300 + 1.37 * xx + 0.71 * yy).round().astype(np.uint16)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p10le"
        v.codec_context.options = {"crf": "0", "preset": "veryfast"}
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p10le")
            planes = [luma + i, np.full((height // 2, width // 2), 512, np.uint16)]
            for plane, data in zip(frame.planes, [planes[0], planes[1], planes[1]]):
                view = np.frombuffer(plane, np.uint16).reshape(plane.height, plane.line_size // 2)
                view[:, : plane.width] = data
            frame.pts = i
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    return path


def test_ten_bit_luma_keeps_its_precision(tmp_path, model_args, run_cli, out_dir):
    """The low two bits of 10-bit luma survive: the output is not 8-bit shifted up."""
    clip = ramp_clip(tmp_path / "ramp10.mkv")
    out = out_dir / "up.mkv"
    assert run_cli("enhance", clip, "-o", out, *model_args(2, name="exact"), "--crf", "0").code == 0
    src, video = decode_video(clip), decode_video(out)
    assert video.pix_fmt == "yuv420p10le"
    for a, b in zip(src.lumas, video.lumas):
        a = a.astype(float)
        assert (a % 4 != 0).mean() > 0.7  # the input really uses the low bits
        down = b[::2, ::2].astype(float)
        truncated = np.round(a / 4) * 4  # what an 8-bit path would give at best
        assert np.abs(down - a).mean() < 0.3 * np.abs(truncated - a).mean()


def test_unsupported_depth_warns_and_picks_nearest(clip_factory, model_args, run_cli, out_dir, caplog):
    """libx264 has no 12-bit: one warning naming both formats, written as 10-bit."""
    clip = clip_factory("p12.mkv", frames=3, pix_fmt="yuv420p12le", codec="libx265")
    out = out_dir / "up.mp4"
    with caplog.at_level(logging.WARNING):
        r = run_cli("enhance", clip.path, "-o", out, *model_args(2, name="exact"))
    assert r.code == 0, r.err
    warnings = [rec.getMessage() for rec in caplog.records if "cannot encode" in rec.getMessage()]
    assert len(warnings) == 1 and "yuv420p12le" in warnings[0] and "yuv420p10le" in warnings[0]
    assert decode_video(out).pix_fmt == "yuv420p10le"


def test_pix_fmt_option_asks_for_eight_bit(clip_factory, model_args, run_cli, out_dir):
    clip = clip_factory("yuv422p10le_libx264.mkv", frames=4, pix_fmt="yuv422p10le")
    out = out_dir / "up.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2), "--pix-fmt", "yuv420p").code == 0
    video = decode_video(out)
    assert video.pix_fmt == "yuv420p"
    assert indices(video, clip.size, 2) == [0, 1, 2, 3]


@pytest.mark.parametrize("pix_fmt", ["gray", "gray10le"])
def test_gray_stays_gray(clip_factory, model_args, run_cli, out_dir, pix_fmt):
    """Monochrome stays monochrome (HEVC's decoder reports 4:0:0 as gray; H.264's does not)."""
    clip = clip_factory(f"{pix_fmt}.mkv", frames=3, pix_fmt=pix_fmt, codec="ffv1")
    assert decode_video(clip.path).pix_fmt == pix_fmt
    out = out_dir / "up.mkv"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2), "--codec", "hevc").code == 0
    video = decode_video(out)
    assert video.pix_fmt == pix_fmt
    assert indices(video, clip.size, 2) == [0, 1, 2]


@pytest.mark.parametrize("name, colour, full", [
    ("hlg", (9, 9, 18), False),  # BT.2020 non-constant, BT.2020 primaries, ARIB STD-B67 (HLG)
    ("pq", (9, 9, 16), False),  # SMPTE ST 2084 (PQ)
    ("full10", (1, 1, 1), True),
])
def test_hdr_and_range_tags_kept(clip_factory, model_args, run_cli, out_dir, name, colour, full):
    clip = clip_factory(f"{name}.mkv", frames=3, pix_fmt="yuv420p10le", colour=colour, full_range=full)
    src = decode_video(clip.path)
    assert (src.colorspace, src.color_primaries, src.color_trc) == colour
    out = out_dir / "up.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2, name="exact")).code == 0
    video = decode_video(out)
    assert video.pix_fmt == "yuv420p10le"
    assert (video.colorspace, video.color_primaries, video.color_trc) == colour
    assert video.color_range == (2 if full else 1)
    if full:  # full-range code cells reach 0..1023
        lo, hi = np.percentile(video.lumas[0][:48], [5, 95])
        assert lo < 20 and hi > 1000, (lo, hi)


@pytest.mark.parametrize("size, scale, want", [((320, 240), 4, (6, 6)), ((640, 576), 2, (6, 5))])
def test_untagged_sd_is_tagged_bt601(clip_factory, model_args, run_cli, out_dir, size, scale, want):
    """Untagged SD is shown with BT.601; upscaled past 1280x720 it would be shown with BT.709
    (players guess by size) and its colours would shift. The output says BT.601."""
    clip = clip_factory(f"untagged{size[0]}x{size[1]}.mp4", width=size[0], height=size[1], frames=2)
    assert decode_video(clip.path).colorspace == 2  # unspecified
    out = out_dir / "up.mp4"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(scale)).code == 0
    video = decode_video(out)
    assert (video.width, video.height) == (scale * size[0], scale * size[1])
    assert (video.colorspace, video.color_primaries, video.color_range) == (*want, 1)


@pytest.mark.parametrize("value", ["rgb24", "nonsense"])
def test_bad_pix_fmt_is_one_line(clip_factory, model_args, run_cli, out_dir, value):
    clip = clip_factory("cfr8.mp4", frames=8)
    r = run_cli("enhance", clip.path, "-o", out_dir / "up.mp4", *model_args(2), "--pix-fmt", value)
    assert r.code != 0 and len(r.err_lines) == 1 and "--pix-fmt" in r.err
    assert list(out_dir.iterdir()) == []


def test_auto_engine_skips_eight_bit_only_engines_for_deep_input(models_dir, monkeypatch):
    """On a GPU machine, auto would pick an engine that moves uint8 planes; 10-bit input
    gets the first CPU engine instead."""
    import streamsr.backends as backends
    from streamsr.types import ModelCard

    monkeypatch.setattr(backends, "installed_backends", lambda: ["tensorrt", "cuda", "onnxruntime"])
    card = ModelCard.load(models_dir / "exact_x2.json")
    assert backends.create_backend("auto", card, threads=1, bit_depth=10).name == "onnxruntime"
