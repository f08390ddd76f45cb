"""Telling clean image files from compressed ones, and the default model that follows from it."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamsr import zoo
from streamsr.input_kind import CLEAN_JPEG_QUALITY, images_kind, jpeg_quality, kind_of_image, webp_is_lossless


def _picture(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize("quality", [10, 40, 75, 88, 90, 95, 100])
@pytest.mark.parametrize("progressive", [0, 1])
def test_jpeg_quality_is_read_back_exactly_from_libjpeg_files(tmp_path: Path, quality: int, progressive: int) -> None:
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), _picture(), [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])
    assert jpeg_quality(path) == quality
    assert kind_of_image(path) == ("clean" if quality >= CLEAN_JPEG_QUALITY else "compressed")


def test_grey_jpeg_and_an_exif_segment_before_the_tables(tmp_path: Path) -> None:
    grey = tmp_path / "grey.jpg"
    cv2.imwrite(str(grey), _picture()[..., 0], [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert jpeg_quality(grey) == 60
    data = grey.read_bytes()
    app1 = b"\xff\xe1" + (2 + 1000).to_bytes(2, "big") + bytes(1000)  # a large APP1 (EXIF-like) segment
    exif = tmp_path / "exif.jpg"
    exif.write_bytes(data[:2] + app1 + data[2:])
    assert cv2.imread(str(exif)) is not None
    assert jpeg_quality(exif) == 60


@pytest.mark.parametrize("content", [b"", b"\xff\xd8", b"\xff\xd8\xff\xdb\x00", b"not a jpeg at all",
                                     b"\xff\xd8\xff\xda\x00\x02"])
def test_unreadable_jpeg_is_compressed_not_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    assert jpeg_quality(path) is None
    assert kind_of_image(path) == "compressed"
    assert kind_of_image(tmp_path / "missing.jpg") == "compressed"


def test_webp_lossless_and_lossy(tmp_path: Path) -> None:
    lossless, lossy = tmp_path / "a.webp", tmp_path / "b.webp"
    cv2.imwrite(str(lossless), _picture(), [cv2.IMWRITE_WEBP_QUALITY, 101])  # above 100: lossless
    cv2.imwrite(str(lossy), _picture(), [cv2.IMWRITE_WEBP_QUALITY, 80])
    assert webp_is_lossless(lossless) and kind_of_image(lossless) == "clean"
    assert not webp_is_lossless(lossy) and kind_of_image(lossy) == "compressed"


def test_lossless_formats_are_clean(tmp_path: Path) -> None:
    for name in ("a.png", "a.bmp", "a.tif"):
        cv2.imwrite(str(tmp_path / name), _picture())
        assert kind_of_image(tmp_path / name) == "clean"


def test_a_run_takes_the_kind_most_images_are(tmp_path: Path) -> None:
    png = [tmp_path / f"{i}.png" for i in range(3)]
    jpg = [tmp_path / f"{i}.jpg" for i in range(3)]
    for p in png:
        cv2.imwrite(str(p), _picture())
    for p in jpg:
        cv2.imwrite(str(p), _picture(), [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert images_kind(png) == "clean"
    assert images_kind(png[:2] + jpg[:1]) == "clean"
    assert images_kind(png[:1] + jpg[:2]) == "compressed"
    assert images_kind(png[:2] + jpg[:2]) == "compressed"  # a tie
    assert images_kind([]) == "compressed"


def test_enhance_picks_the_default_for_the_kind_of_images(tmp_path: Path, run_cli) -> None:
    """Shipped models: PNGs get the best clean model of the fast tier's cost, JPEG-50 the video default."""
    clean_default, compressed_default = zoo.default_model(2, "clean"), zoo.default_model(2, "compressed")
    assert clean_default != compressed_default
    for name, params in (("clean", [".png", []]), ("compressed", [".jpg", [cv2.IMWRITE_JPEG_QUALITY, 50]])):
        folder = tmp_path / name
        folder.mkdir()
        cv2.imwrite(str(folder / f"a{params[0]}"), _picture(), params[1])
        r = run_cli("enhance", folder, "-o", tmp_path / f"{name}_out", "--scale", "2")
        assert r.code == 0, r.err
        expected = clean_default if name == "clean" else compressed_default
        assert f"{expected} on " in r.out and f"the default for {name} images" in r.out
    r = run_cli("enhance", tmp_path / "clean", "-o", tmp_path / "chosen", "--scale", "2", "--model", "espcn")
    assert r.code == 0 and "espcn_x2 on " in r.out and "the default for" not in r.out


def _clip(path: Path, codec: str, options: dict[str, str], frames: int = 6) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = options
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(_picture(), 2 * i, axis=1), format="bgr24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_h264_quantisers_are_read_from_the_decoder(tmp_path: Path) -> None:
    import av

    from streamsr.codec_qp import DECODER_OPTIONS, frame_mean_qp, stream_mean_qp

    path = _clip(tmp_path / "qp25.mp4", "libx264", {"qp": "25", "tune": "zerolatency"})
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = dict(DECODER_OPTIONS)
        qps = [frame_mean_qp(f) for f in container.decode(stream)]
    assert qps == [22.0] + [25.0] * 5  # x264's constant-QP mode codes I frames 3 below P frames
    assert stream_mean_qp(path) == pytest.approx(24.5)
    assert stream_mean_qp(path, frames=1) == 22.0
    hevc = _clip(tmp_path / "hevc.mp4", "libx265", {"crf": "20", "x265-params": "log-level=error"})
    assert stream_mean_qp(hevc) is None  # FFmpeg's HEVC decoder exports no quantisers
    mpeg4 = _clip(tmp_path / "mpeg4.avi", "mpeg4", {"qscale": "3"})
    assert stream_mean_qp(mpeg4) is None  # its decoder exports QPs on MPEG-4's 1-31 scale: not H.264's
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    assert stream_mean_qp(tmp_path / "junk.mp4") is None


def test_video_kind_follows_the_h264_quantiser() -> None:
    from streamsr.input_kind import CLEAN_H264_QP, video_kind

    for scale in (2, 3, 4):
        assert video_kind(CLEAN_H264_QP[scale] - 0.1, scale) == "clean"
        assert video_kind(CLEAN_H264_QP[scale], scale) == "compressed"
        assert video_kind(None, scale) == "compressed"


@pytest.mark.parametrize(("options", "kind", "why"), [
    ({"qp": "12", "tune": "zerolatency"}, "clean", "mean H.264 QP"),
    ({"qp": "40", "tune": "zerolatency"}, "compressed", "mean H.264 QP"),
])
def test_enhance_picks_the_default_for_the_kind_of_video(tmp_path: Path, run_cli, options, kind, why) -> None:
    clip = _clip(tmp_path / "in.mp4", "libx264", options)
    r = run_cli("enhance", clip, "-o", tmp_path / "out.mp4", "--scale", "2")
    assert r.code == 0, r.err
    assert f"{zoo.default_model(2, kind)} on " in r.out and f"the default for {kind} video: {why}" in r.out


def test_enhance_of_hevc_keeps_the_compressed_default(tmp_path: Path, run_cli) -> None:
    clip = _clip(tmp_path / "in.mp4", "libx265", {"crf": "10", "x265-params": "log-level=error"})
    r = run_cli("enhance", clip, "-o", tmp_path / "out.mp4", "--scale", "2")
    assert r.code == 0, r.err
    assert f"{zoo.default_model(2)} on " in r.out and "no H.264 quantisers to read" in r.out


def test_batch_picks_each_files_default_as_enhance_does(tmp_path: Path, run_cli) -> None:
    import json

    src = tmp_path / "archive"
    src.mkdir()
    _clip(src / "sharp.mp4", "libx264", {"qp": "12", "tune": "zerolatency"})
    _clip(src / "cheap.mp4", "libx264", {"qp": "40", "tune": "zerolatency"})
    report = tmp_path / "report.json"
    r = run_cli("batch", src, "-o", tmp_path / "out", "--scale", "2", "--workers", "1", "--json", report)
    assert r.code == 0, r.err
    files = {f["key"]: f for f in json.loads(report.read_text())["files"]}
    assert files["sharp.mp4"]["model"] == zoo.default_model(2, "clean")
    assert files["cheap.mp4"]["model"] == zoo.default_model(2, "compressed")
    assert "the default for clean video: mean H.264 QP" in files["sharp.mp4"]["model_rule"]
    models_line = next(line for line in r.out.splitlines() if "models: chosen by each file's compression" in line)
    assert f"1 {zoo.default_model(2, 'clean')}" in models_line and f"1 {zoo.default_model(2)}" in models_line
    # the same as enhance gives each file alone
    alone = run_cli("enhance", src / "sharp.mp4", "-o", tmp_path / "alone.mp4", "--scale", "2")
    assert alone.code == 0 and f"{zoo.default_model(2, 'clean')} on " in alone.out
    # a second run knows both are done; naming a model redoes them with it
    again = run_cli("batch", src, "-o", tmp_path / "out", "--scale", "2", "--workers", "1")
    assert again.code == 0 and "files: 0 done, 2 skipped" in again.out
    fixed = run_cli("batch", src, "-o", tmp_path / "out", "--scale", "2", "--workers", "1", "--model", "espcn")
    assert fixed.code == 0 and "files: 2 done" in fixed.out and "models: chosen" not in fixed.out
