"""The benchmarks' synthetic camera clips: streamsr.synthetic's moving scene as H.264, with a
tone as AAC audio, through the same encoder setup as every streamsr output."""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamsr.colour import BT601_TV, rgb_to_yuv420_swscale  # noqa: E402
from streamsr.encoding import VideoEncoding  # noqa: E402
from streamsr.pixfmt import YUV420P, frame_from_planes  # noqa: E402
from streamsr.sinks.video_stream import add_video_stream, encode  # noqa: E402
from streamsr.synthetic import scene_frames  # noqa: E402

SCENE_FRAMES = 250  # the scene loops after this many frames


def write_scene_clip(path: Path, frames: int, size: tuple[int, int], *, rate: int = 25, gop: int | None = None,
                     first: int = 0, audio: bool = True) -> Path:
    """``frames`` frames of the scene (starting at scene frame ``first``) at ``rate`` fps, x264
    veryfast CRF 23, a keyframe every ``gop`` frames (x264's default when None), and mono AAC."""
    width, height = size
    scene = list(scene_frames(width, height, min(frames, SCENE_FRAMES)))
    with av.open(str(path), "w") as out:
        video = add_video_stream(out, VideoEncoding("h264", preset="veryfast", crf=23, gop=gop), size, rate=rate)
        sound = out.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i in range(frames):
            frame = frame_from_planes(rgb_to_yuv420_swscale(scene[(i + first) % len(scene)], BT601_TV), YUV420P)
            frame.pts, frame.time_base = i, Fraction(1, rate)
            encode(out, video, frame)
        encode(out, video, None)
        if sound is not None:
            _write_tone(out, sound, frames / rate)
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    t = np.arange(int(seconds * 48000), dtype=np.float32) / 48000
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for s in range(0, len(samples), 1024):
        frame = av.AudioFrame.from_ndarray(samples[None, s:s + 1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, s, Fraction(1, 48000)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
