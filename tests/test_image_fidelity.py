"""Images: EXIF orientation is applied (alpha too) and the outputs are upright, as viewers
show the input; small colour details keep their colours in JPEG outputs.

The EXIF blocks are written here by hand (a one-entry TIFF IFD), into JPEG (APP1) and PNG
(eXIf); OpenCV's IMREAD_COLOR, which applies orientation, is the reference for each of the
eight orientations.
"""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from streamsr.sources.image_source import read_image


def tiff_orientation(orientation: int, big_endian: bool = False) -> bytes:
    o = ">" if big_endian else "<"
    head = b"MM\x00\x2a" if big_endian else b"II\x2a\x00"
    return head + struct.pack(o + "IH", 8, 1) + struct.pack(o + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(o + "I", 0)


def with_exif(encoded: bytes, suffix: str, orientation: int, big_endian: bool = False) -> bytes:
    tiff = tiff_orientation(orientation, big_endian)
    if suffix == ".jpg":
        payload = b"Exif\x00\x00" + tiff
        return encoded[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + encoded[2:]
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    return encoded[:33] + chunk + encoded[33:]  # after the signature and IHDR


def marked(w: int = 40, h: int = 24, alpha: bool = False) -> np.ndarray:
    """A picture whose every flip and turn differs: a red block top-left, a blue bar on the right."""
    img = np.full((h, w, 3), 120, np.uint8)
    img[: h // 3, : w // 4] = (0, 0, 255)
    img[:, -w // 8:] = (255, 0, 0)
    if alpha:
        a = np.tile(np.linspace(30, 250, w).astype(np.uint8), (h, 1))
        img = np.dstack([img, a])
    return img


def write(path, img, orientation, big_endian=False):
    ok, data = cv2.imencode(path.suffix, img, [cv2.IMWRITE_JPEG_QUALITY, 100] if path.suffix == ".jpg" else [])
    assert ok
    path.write_bytes(with_exif(data.tobytes(), path.suffix, orientation, big_endian))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_orientation_matches_opencv(tmp_path, orientation, suffix):
    path = tmp_path / f"o{orientation}{suffix}"
    write(path, marked(), orientation, big_endian=orientation % 2 == 0)
    reference = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies EXIF orientation
    assert (reference.shape[0] > reference.shape[1]) == (orientation >= 5)  # the file is what we meant
    planes, _ = read_image(path)
    from streamsr.colour import planes_to_bgr

    assert np.abs(planes_to_bgr(planes).astype(int) - reference).max() <= 2  # YCbCr round trip


def test_alpha_turns_with_the_picture(tmp_path):
    path = tmp_path / "a.png"
    img = marked(alpha=True)
    write(path, img, 6)
    _, alpha = read_image(path)
    assert alpha is not None and np.array_equal(alpha, np.rot90(img[..., 3], -1))


def test_no_exif_is_upright_already():
    from streamsr.sources.image_file import apply_orientation, exif_orientation

    assert exif_orientation(b"") == 1 and exif_orientation(b"garbage!") == 1
    assert exif_orientation(tiff_orientation(6)) == 6 and exif_orientation(b"Exif\x00\x00" + tiff_orientation(3)) == 3
    img = marked()
    assert np.array_equal(apply_orientation(img, 1), img)


@pytest.mark.parametrize("suffix, out_suffix", [(".jpg", ".jpg"), (".jpg", ".png"), (".png", ".png")])
def test_enhanced_image_is_upright(tmp_path, model_args, run_cli, suffix, out_suffix):
    """A phone photo stored sideways with orientation 6 comes out upright, with no tag left
    that would turn it again."""
    src = tmp_path / f"side{suffix}"
    write(src, marked(), 6)
    out = tmp_path / f"up{out_suffix}"
    r = run_cli("enhance", src, "-o", out, *model_args(2))
    assert r.code == 0, r.err
    upright = cv2.imread(str(src), cv2.IMREAD_COLOR)
    got_raw = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)  # as stored, no tag applied
    got_viewer = cv2.imread(str(out), cv2.IMREAD_COLOR)  # as a viewer shows it
    assert got_raw.shape[:2] == (2 * upright.shape[0], 2 * upright.shape[1])
    assert np.array_equal(got_raw[..., :3], got_viewer)
    down = cv2.resize(got_raw[..., :3], upright.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(down.astype(int) - upright).mean() < 6


@pytest.mark.parametrize("size", [(8, 8), (31, 17)])
@pytest.mark.parametrize("scale", [2, 3])
def test_tiny_image_colours_survive_jpeg_output(tmp_path, model_args, run_cli, size, scale):
    """One-pixel colour details (a red/blue checkerboard, an icon or a plate crop) keep their
    colours in a JPEG output as in a PNG one: the JPEG is written with full chroma (OpenCV's
    default 4:2:0 averaged neighbours into purple: 32 grey levels off on average)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[(xx + yy) % 2 == 0] = (0, 0, 255)
    img[(xx + yy) % 2 == 1] = (255, 0, 0)
    src = tmp_path / "tiny.png"
    cv2.imwrite(str(src), img)
    outs = {}
    for suffix in (".png", ".jpg"):
        out = tmp_path / f"up{suffix}"
        assert run_cli("enhance", src, "-o", out, *model_args(scale, name="exact")).code == 0
        outs[suffix] = cv2.imread(str(out)).astype(int)
    assert np.abs(outs[".jpg"] - outs[".png"]).mean() < 4


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_image_keeps_its_precision(tmp_path, model_args, run_cli, suffix):
    """A 16-bit gradient comes out 16-bit with its fine steps (it used to be cut to 8 bits)."""
    h, w = 24, 40
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = (20000 + 37 * xx + 23 * yy).astype(np.uint16)
    src = tmp_path / f"deep{suffix}"
    cv2.imwrite(str(src), np.dstack([ramp, ramp, ramp]))
    out = tmp_path / f"up{suffix}"
    assert run_cli("enhance", src, "-o", out, *model_args(2, name="exact")).code == 0
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and got.shape == (2 * h, 2 * w, 3)
    # gray in, gray out, to within the YCbCr round trip; far finer than an 8-bit step (257)
    assert np.abs(got[::2, ::2].astype(int) - ramp[..., None]).max() <= 3


def test_sixteen_bit_into_jpeg_is_said(tmp_path, model_args, run_cli, caplog):
    src = tmp_path / "deep.png"
    cv2.imwrite(str(src), np.full((16, 16, 3), 40000, np.uint16))
    with caplog.at_level("WARNING"):
        assert run_cli("enhance", src, "-o", tmp_path / "up.jpg", *model_args(2)).code == 0
    assert any("16-bit" in rec.getMessage() for rec in caplog.records)
    assert cv2.imread(str(tmp_path / "up.jpg")).dtype == np.uint8
