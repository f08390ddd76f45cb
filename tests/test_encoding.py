"""One encoder setup (streamsr.encoding, sinks/video_stream.py) for every stream streamsr writes:
each caller's options are the ones it wrote by hand before, and a stream comes out with its
codec, size, time base, colour tags and codec tag."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamsr.colour import Colour
from streamsr.encoding import VideoEncoding
from streamsr.pixfmt import YUV420P, frame_from_planes
from streamsr.sinks.video_stream import CaptureClockStream, add_video_stream, encode, write_clip

# (caller, the encoding it asks for now, the options dict it built by hand before)
CALLERS = [
    ("av_sink h264", VideoEncoding("h264", preset="veryfast", crf=18),
     {"preset": "veryfast", "crf": "18"}),
    ("av_sink h264 into AVI", VideoEncoding("h264", preset="veryfast", crf=18, b_frames=False),
     {"preset": "veryfast", "crf": "18", "bf": "0"}),
    ("av_sink hevc", VideoEncoding("hevc", preset="medium", crf=20),
     {"preset": "medium", "crf": "20", "x265-params": "log-level=error"}),
    ("av_sink hevc, no B-frames", VideoEncoding("hevc", preset="medium", crf=20, b_frames=False),
     {"preset": "medium", "crf": "20", "bf": "0", "x265-params": "log-level=error:bframes=0"}),
    ("rtsp push", VideoEncoding("h264", preset="ultrafast", tune="zerolatency", gop=25, params=("repeat-headers=1",)),
     {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "keyint=25:repeat-headers=1"}),
    ("segments h264", VideoEncoding("h264", preset="veryfast", crf=23, tune="zerolatency", gop=50,
                                    params=("scenecut=0",)),
     {"preset": "veryfast", "crf": "23", "tune": "zerolatency", "x264-params": "keyint=50:scenecut=0"}),
    ("write_clip lossless", VideoEncoding("h264", preset="ultrafast", qp=0), {"qp": "0", "preset": "ultrafast"}),
    ("write_clip lossy", VideoEncoding("h264", crf=20), {"crf": "20"}),
    ("bench peer", VideoEncoding("h264", preset="veryfast", crf=18), {"preset": "veryfast", "crf": "18"}),
    ("lr_degrade h264", VideoEncoding("h264", preset="veryfast", crf=28, tune="zerolatency"),
     {"crf": "28", "preset": "veryfast", "tune": "zerolatency"}),
    ("lr_degrade hevc, one core", VideoEncoding("hevc", preset="veryfast", crf=28, tune="zerolatency",
                                                params=("pools=none", "frame-threads=1")),
     {"crf": "28", "preset": "veryfast", "tune": "zerolatency",
      "x265-params": "log-level=error:pools=none:frame-threads=1"}),
]


@pytest.mark.parametrize("caller, encoding, before", CALLERS, ids=[c[0] for c in CALLERS])
def test_each_caller_gets_the_options_it_built_by_hand(caller: str, encoding: VideoEncoding, before: dict) -> None:
    assert encoding.options() == before


def test_hevc_recordings_now_get_their_gop_too() -> None:
    """The one change: segments wrote x264-params even for libx265, which ignored them."""
    options = VideoEncoding("hevc", preset="veryfast", crf=23, tune="zerolatency", gop=50,
                            params=("scenecut=0",)).options()
    assert options["x265-params"] == "log-level=error:keyint=50:scenecut=0" and "x264-params" not in options


def test_unknown_codec_is_refused() -> None:
    from streamsr.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown codec"):
        VideoEncoding("vp9")


def _planes(h: int, w: int, value: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.full((h, w), value, np.uint8), np.full((h // 2, w // 2), 128, np.uint8),
            np.full((h // 2, w // 2), 128, np.uint8))


@pytest.mark.parametrize("codec, suffix, tag", [("h264", ".mp4", None), ("hevc", ".mp4", "hvc1"), ("hevc", ".mkv", None)])
def test_add_video_stream_writes_what_it_was_told(tmp_path: Path, codec: str, suffix: str, tag: str | None) -> None:
    path = tmp_path / f"out{suffix}"
    time_base = Fraction(1, 1000)
    tags = Colour("bt709", "pc").encoder_tags()
    with av.open(str(path), "w") as out:
        stream = add_video_stream(out, VideoEncoding(codec, preset="ultrafast", crf=30), (64, 48), rate=Fraction(25),
                                  time_base=time_base, colour_tags=tags, codec_tag=tag)
        for i in range(3):
            frame = frame_from_planes(_planes(48, 64, 40 * i + 30), YUV420P)
            frame.pts, frame.time_base = i * 40, time_base
            encode(out, stream, frame)
        encode(out, stream, None)
    with av.open(str(path)) as inp:
        v = inp.streams.video[0]
        frames = list(inp.decode(v))
        assert v.codec_context.name == codec and (v.width, v.height) == (64, 48) and len(frames) == 3
        assert [f.pts * f.time_base for f in frames] == [Fraction(0), Fraction(40, 1000), Fraction(80, 1000)]
        assert int(frames[0].colorspace) == tags["colorspace"] and int(frames[0].color_range) == tags["color_range"]
        if tag:
            assert v.codec_context.codec_tag == tag


def test_write_clip_is_lossless_by_default(tmp_path: Path) -> None:
    planes = [_planes(32, 48, v) for v in (20, 120, 220)]
    assert write_clip(tmp_path / "c.mp4", planes) == 3
    with av.open(str(tmp_path / "c.mp4")) as inp:
        ys = [f.to_ndarray(format="yuv420p")[:32] for f in inp.decode(video=0)]
    assert all(np.array_equal(y, p[0]) for y, p in zip(ys, planes))


def test_capture_clock_stream_stamps_capture_times_and_never_goes_back(tmp_path: Path) -> None:
    path = tmp_path / "live.ts"
    colour = Colour("smpte170m", "tv")
    with av.open(str(path), "w", format="mpegts") as out:
        enc = CaptureClockStream(out, VideoEncoding("h264", preset="ultrafast", tune="zerolatency"), (32, 32), colour, 25)
        assert enc.fits((32, 32), colour) and not enc.fits((32, 32), Colour("bt709", "tv"))
        for captured in (100.0, 100.5, 100.5, 101.0):  # a repeated capture time still gets a later pts
            enc.write(_planes(32, 32, 100), captured)
        assert enc.last_pts == 90000
        enc.flush()
    with av.open(str(path)) as inp:
        pts = sorted(f.pts for f in inp.decode(video=0))
    assert [p - pts[0] for p in pts] == [0, 45000, 45001, 90000]
