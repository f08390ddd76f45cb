"""A frame size change mid-stream (a camera switched resolution; two recordings joined) no
longer fails the run: every frame is written at the first frame's size, later frames scaled
to fit with their aspect ratio kept, and a warning line says so."""
from __future__ import annotations

import numpy as np
import pytest

from damage import join, write_h264
from synth import decode_video, leftovers, read_index

FIRST = 20


def joined(tmp_path, size: tuple[int, int]):
    a = write_h264(tmp_path / "a.ts", frames=FIRST)
    # the first part's timestamps start 2 frames in (B-frame delay): continue after them
    b = write_h264(tmp_path / "b.ts", frames=FIRST, width=size[0], height=size[1],
                   first_pts=(FIRST + 2) * 3600, first_index=FIRST)
    return join([a, b], tmp_path / "joined.ts")


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def test_smaller_frames_of_the_same_shape_are_scaled_up(tmp_path, out_dir, run_cli, model_args):
    src = joined(tmp_path, (64, 48))
    r = run_cli("enhance", src, "-o", out_dir / "up.mp4", *model_args(2))
    assert r.code == 0, r.err
    video = decode_video(out_dir / "up.mp4")
    assert (video.width, video.height) == (256, 192)
    assert [read_index(y, (128, 96), 2) for y in video.lumas] == list(range(2 * FIRST))
    assert len(r.err_lines) == 1 and "frame size changes" in r.err and "64x48" in r.err, r.err
    assert leftovers(out_dir, ["up.mp4"]) == []


def test_another_aspect_ratio_is_fitted_on_black(tmp_path, out_dir, run_cli, model_args):
    src = joined(tmp_path, (96, 96))
    r = run_cli("enhance", src, "-o", out_dir / "up.mkv", *model_args(2))
    assert r.code == 0, r.err
    video = decode_video(out_dir / "up.mkv")
    assert (video.width, video.height) == (256, 192) and len(video.lumas) == 2 * FIRST
    last = video.lumas[-1].astype(np.float32)
    # 96x96 fitted into 128x96: pillarboxed, 16 input columns of black each side (x2 = 32)
    assert last[:, :28].mean() < 20 and last[:, -28:].mean() < 20
    assert last[:, 40:-40].std() > 20  # the picture itself is there


def test_the_fit_keeps_aspect_and_centres():
    from streamsr.sources.conform import fit_planes

    y = np.full((48, 96), 200, np.uint8)  # a wide frame into a 4:3 one
    c = np.full((24, 48), 60, np.uint8)
    planes = fit_planes((y, c, c), [(96, 128), (48, 64), (48, 64)], full_range=False)
    assert [p.shape for p in planes] == [(96, 128), (48, 64), (48, 64)]
    rows = np.where(planes[0][:, 64] == 200)[0]
    assert (rows.min(), rows.max()) == (16, 79)  # 128x64 picture, 16 rows of black above and below
    assert planes[0][0, 0] == 16 and planes[1][0, 0] == 128 and planes[1][24, 32] == 60
