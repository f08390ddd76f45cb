"""Colour in live mode, with saturated patches (pure red, green, blue) and a dark grey, never grey
alone (grey is the same in every matrix): range and matrix travel with every frame, the preview
converts with them, recordings are tagged with them, and untagged SD upscaled to HD says BT.601.

Decoded recordings are converted to RGB by FFmpeg's swscale (not by streamsr) from the tags in the
file, the way a player would: an untagged matrix is guessed from the frame height (BT.709 from
720 lines), an untagged range is limited."""
from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamsr.types import Frame

pytestmark = pytest.mark.timeout(90)

# BGR patches, left to right: red, green, blue, dark grey
PATCHES = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (48, 48, 48)]
# 8-bit codes (Y, Cb, Cr) of pure red in each matrix and range (ITU-R BT.601 / BT.709 tables)
RED_CODES = {("smpte170m", "tv"): (81, 90, 240), ("bt709", "tv"): (63, 102, 240),
             ("smpte170m", "pc"): (76, 85, 255), ("bt709", "pc"): (54, 99, 255)}


def patch_picture(width: int, height: int) -> np.ndarray:
    bgr = np.zeros((height, width, 3), np.uint8)
    step = width // len(PATCHES)
    for i, colour in enumerate(PATCHES):
        bgr[:, i * step:(i + 1) * step] = colour
    return bgr


def patch_centres(pic: np.ndarray) -> list[np.ndarray]:
    h, w = pic.shape[:2]
    step = w // len(PATCHES)
    return [pic[h // 4: 3 * h // 4, i * step + step // 4:(i + 1) * step - step // 4].reshape(-1, 3).mean(0)
            for i in range(len(PATCHES))]


def assert_patches(bgr: np.ndarray, tolerance: float, what: str) -> None:
    for got, want in zip(patch_centres(bgr), PATCHES):
        assert np.abs(got - np.array(want)).max() <= tolerance, (what, got.round(1), want)


@pytest.mark.parametrize("matrix, rng", list(RED_CODES))
def test_preview_conversion_uses_the_frames_matrix_and_range(matrix: str, rng: str) -> None:
    from streamsr.colour import Colour, bgr_to_ycbcr, ycbcr_to_bgr

    colour = Colour(matrix, rng)
    y, cb, cr = bgr_to_ycbcr(patch_picture(64, 16), colour)
    assert (int(y[0, 0]), int(cb[0, 0]), int(cr[0, 0])) == pytest.approx(RED_CODES[(matrix, rng)], abs=1)
    half = (cb[::2, ::2].copy(), cr[::2, ::2].copy())  # 4:2:0, as video is
    assert_patches(ycbcr_to_bgr((y, *half), colour), 3, f"{matrix}/{rng}")


def test_preview_jpeg_of_a_full_range_bt709_frame_shows_the_colours() -> None:
    import cv2

    from streamsr.colour import Colour, bgr_to_yuv420
    from streamsr.livepipe.metrics import CameraMetrics, LiveStatus
    from streamsr.sinks.http_preview import PreviewServer

    colour = Colour("bt709", "pc")
    frame = Frame(index=0, planes=bgr_to_yuv420(patch_picture(128, 32), colour), captured_at=time.monotonic(),
                  colour=colour)
    server = PreviewServer(["cam0"], LiveStatus(lambda: [CameraMetrics("cam0")]), "127.0.0.1", 0)
    try:
        server.write("cam0", frame)
        _, jpeg = server.slots["cam0"].jpeg_for(95)
    finally:
        server.close()
    assert_patches(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), 8, "preview jpeg")


def write_patch_clip(path: Path, width: int, height: int, frames: int, matrix: str | None, full_range: bool) -> Path:
    """An H.264 clip of the patches; ``matrix`` None leaves the matrix untagged (and BT.601)."""
    from streamsr.colour import Colour, bgr_to_yuv420

    colour = Colour(matrix or "smpte170m", "pc" if full_range else "tv")
    planes = bgr_to_yuv420(patch_picture(width, height), colour)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        cc = stream.codec_context
        if full_range:
            cc.color_range = 2
        if matrix is not None:
            for attr, value in colour.encoder_tags().items():
                setattr(cc, attr, value)
        cc.options = {"crf": "8", "preset": "ultrafast"}
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane, data in zip(frame.planes, planes):
                view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                view[:, : plane.width] = data
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def as_a_player_sees_it(frame: av.VideoFrame) -> np.ndarray:
    """BGR through swscale, from the frame's tags; untagged: BT.709 from 720 lines, limited range."""
    colorspace = int(frame.colorspace)
    if colorspace in (0, 2):  # unspecified
        colorspace = 1 if frame.height >= 720 else 6
    full = int(frame.color_range) == 2 or frame.format.name.startswith("yuvj")
    return frame.to_ndarray(format="bgr24", src_colorspace=colorspace, dst_colorspace=colorspace,
                            src_color_range=2 if full else 1, dst_color_range=2)


def test_live_source_reads_range_and_matrix(tmp_path: Path) -> None:
    import threading

    from streamsr.sources.live_source import LiveOptions, LiveSource

    cases = {"full709": ("bt709", True, 64, "bt709", "pc"), "sd": (None, False, 64, "smpte170m", "tv"),
             "hd": (None, False, 720, "bt709", "tv")}
    for name, (matrix, full, height, want_matrix, want_range) in cases.items():
        clip = write_patch_clip(tmp_path / f"{name}.mp4", 128, height, 2, matrix, full)
        source = LiveSource(str(clip), LiveOptions(realtime=False), name=name)
        frame = next(iter(source.frames(threading.Event())))
        assert (frame.colour.matrix, frame.colour.range) == (want_matrix, want_range), name


def test_recordings_keep_the_cameras_colour_and_tag_upscaled_sd_as_bt601(models_dir: Path, tmp_path: Path) -> None:
    """Through the whole live pipeline: a full-range BT.709 camera and an untagged SD camera
    (480x360, upscaled x2 to 960x720, where players would assume BT.709) are recorded."""
    from streamsr.backends import create_backend
    from streamsr.livepipe import Camera, LivePipeline, LivePolicy
    from streamsr.sinks.segments import SegmentRecorder, SegmentSettings
    from streamsr.sources.live_source import LiveOptions, LiveSource
    from streamsr.types import ModelCard

    clips = {"full709": write_patch_clip(tmp_path / "full709.mp4", 128, 96, 8, "bt709", True),
             "sd": write_patch_clip(tmp_path / "sd.mp4", 480, 360, 4, None, False)}
    backend = create_backend("onnxruntime", ModelCard.load(models_dir / "near_x2.json"), threads=1)
    recorder = SegmentRecorder(tmp_path / "rec", SegmentSettings(crf=10, preset="ultrafast"))
    cams = [Camera(LiveSource(str(p), LiveOptions(realtime=True), name=n)) for n, p in clips.items()]
    try:
        pipe = LivePipeline(cams, backend, [recorder], LivePolicy(latency_ceiling_s=5.0))
        pipe.run(duration_s=2.5)
    finally:
        recorder.close()
        backend.close()
    for name, want in (("full709", (1, 2, 1, 1)), ("sd", (6, 1, 6, 6))):
        files = recorder.files(name)
        assert files, name
        with av.open(str(files[0])) as c:
            decoded = next(c.decode(video=0))
        tags = (int(decoded.colorspace), int(decoded.color_range), int(decoded.color_primaries),
                int(decoded.color_trc))
        assert tags == want, (name, tags)
        assert_patches(as_a_player_sees_it(decoded), 10, name)
