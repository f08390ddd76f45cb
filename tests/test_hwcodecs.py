"""NVDEC/NVENC: the choice, its fallback and its errors, the NVENC options, and the decode path
of a decoder of our own, run here with FFmpeg's CPU decoder standing in for NVDEC. Decoding
and encoding on a real NVIDIA GPU is in benchmarks/gpu_session.sh (no GPU here or in CI)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from streamsr import hwcodecs
from streamsr.encoding import VideoEncoding
from streamsr.errors import ConfigError
from streamsr.sources.av_source import AvFileSource
from synth import make_clip


def test_nvenc_settings_follow_the_x264_ones() -> None:
    e = VideoEncoding("h264", preset="veryfast", crf=18, nvenc=True)
    assert e.encoder == "h264_nvenc" and VideoEncoding("hevc", nvenc=True).encoder == "hevc_nvenc"
    assert e.options() == {"preset": "p3", "tune": "hq", "rc": "vbr", "cq": "18", "b": "0"}
    live = VideoEncoding("h264", preset="ultrafast", qp=0, tune="zerolatency", gop=50, b_frames=False, nvenc=True)
    assert live.options() == {"preset": "p1", "tune": "ull", "rc": "constqp", "qp": "0", "g": "50", "bf": "0"}
    assert VideoEncoding("h264", crf=0, nvenc=True).options()["cq"] == "1"  # NVENC reads cq 0 as "automatic"
    assert VideoEncoding("h264", preset="veryfast", crf=18).encoder == "libx264"  # the CPU's, unchanged


@pytest.fixture
def opens(monkeypatch):
    """Make every NVIDIA codec open (None) or fail with a reason (a string)."""
    def set_to(reason: str | None) -> None:
        monkeypatch.setattr(hwcodecs, "unavailable", lambda name, mode: None if reason is None else f"{name}: {reason}")
    return set_to


def test_auto_uses_nvidias_codecs_only_with_the_model_on_the_gpu(opens) -> None:
    opens(None)
    assert hwcodecs.choose_decoder("auto", "h264", on_gpu=True) == "h264_cuvid"
    assert hwcodecs.choose_encoder("auto", "hevc", on_gpu=True) is True
    assert hwcodecs.choose_decoder("auto", "h264", on_gpu=False) is None
    assert hwcodecs.choose_encoder("auto", "h264", on_gpu=False) is False
    assert hwcodecs.choose_decoder("cpu", "h264", on_gpu=True) is None
    assert hwcodecs.choose_encoder("cpu", "h264", on_gpu=True) is False
    assert hwcodecs.choose_decoder("auto", "rawvideo", on_gpu=True) is None  # NVDEC has no decoder for it


def test_auto_falls_back_to_the_cpu_and_says_why(opens, caplog) -> None:
    opens("no driver")
    with caplog.at_level(logging.INFO, logger="streamsr.hwcodecs"):
        assert hwcodecs.choose_decoder("auto", "h264", on_gpu=True) is None
        assert hwcodecs.choose_encoder("auto", "h264", on_gpu=True) is False
    assert "decoding on the CPU: h264_cuvid: no driver" in caplog.text
    assert "encoding on the CPU: h264_nvenc: no driver" in caplog.text


def test_asking_for_them_where_they_do_not_open_is_an_error(opens) -> None:
    opens("no driver")
    with pytest.raises(ConfigError, match="--decoder nvdec: h264_cuvid: no driver"):
        hwcodecs.choose_decoder("nvdec", "h264", on_gpu=False)
    with pytest.raises(ConfigError, match="--encoder nvenc: hevc_nvenc: no driver"):
        hwcodecs.choose_encoder("nvenc", "hevc", on_gpu=False)
    with pytest.raises(ConfigError, match="unknown --decoder"):
        hwcodecs.choose_decoder("vaapi", "h264", on_gpu=True)


def test_without_an_nvidia_driver_they_do_not_open() -> None:
    reason = hwcodecs.unavailable("h264_nvenc", "w")
    if reason is None:
        pytest.skip("NVENC opens on this machine")
    assert "h264_nvenc" in reason and "NVIDIA" in reason


def test_a_decoder_of_our_own_gives_the_same_frames(tmp_path: Path) -> None:
    """The NVDEC path feeds the stream's packets to a decoder it creates; FFmpeg's own h264
    decoder stands in for h264_cuvid: same frames, timestamps and decode report."""
    clip = make_clip(tmp_path / "in.mp4", frames=30, audio_seconds=1.0, gop=10).path

    def decode(hw_decoder):
        with AvFileSource(clip, hw_decoder=hw_decoder) as source:
            frames = [(f.pts, f.time_base, f.planes[0].copy()) for f in source]
            return source.decoder_name, frames, source.report

    name_a, frames_a, report_a = decode(None)
    name_b, frames_b, report_b = decode(lambda codec: codec)
    assert name_a == name_b == "h264"
    assert len(frames_a) == len(frames_b) == 30 and report_a == report_b and report_b.clean
    for (pts_a, tb_a, y_a), (pts_b, tb_b, y_b) in zip(frames_a, frames_b):
        assert (pts_a, tb_a) == (pts_b, tb_b) and np.array_equal(y_a, y_b)


def test_the_cli_says_which_codecs_ran_and_refuses_missing_ones(tmp_path: Path, run_cli, model_args) -> None:
    clip = make_clip(tmp_path / "in.mp4", frames=6).path
    r = run_cli("enhance", clip, "-o", tmp_path / "out.mp4", *model_args())
    assert r.code == 0, r.err
    assert "decode h264, encode libx264" in r.out
    if hwcodecs.unavailable("h264_nvenc", "w") is None:
        pytest.skip("NVENC opens on this machine")
    for option in (["--encoder", "nvenc"], ["--decoder", "nvdec"]):
        r = run_cli("enhance", clip, "-o", tmp_path / "hw.mp4", *model_args(), *option)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
        assert "does not open here" in r.err and not (tmp_path / "hw.mp4").exists()
