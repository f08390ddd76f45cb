"""An existing output may be the only copy of evidence: `enhance` refuses to replace it
unless --force (or -y) is given, and says so before the model loads.

"Before the model loads" is checked with a model card that does not exist: had the model
been loaded first, its error would be the one reported.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from synth import decode_video, leftovers, make_clip

NO_MODEL = ["--model", "/nonexistent/card.json"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("ow") / "in.mp4", frames=6, audio_seconds=0.24)


def test_existing_video_is_refused_before_the_model_loads(clip, tmp_path, run_cli):
    out = tmp_path / "up.mp4"
    out.write_bytes(b"the only copy")
    r = run_cli("enhance", clip.path, "-o", out, *NO_MODEL)
    assert r.code == 3 and len(r.err_lines) == 1, r.err
    assert "output exists" in r.err and "--force" in r.err and "-y" in r.err
    assert out.read_bytes() == b"the only copy"
    assert leftovers(tmp_path, ["up.mp4"]) == []


@pytest.mark.parametrize("flag", ["--force", "-y"])
def test_force_replaces_it(clip, tmp_path, run_cli, models_dir, flag):
    out = tmp_path / "up.mp4"
    out.write_bytes(b"old")
    r = run_cli("enhance", clip.path, "-o", out, "--model", models_dir / "near_x2.json", flag)
    assert r.code == 0, r.err
    assert len(decode_video(out).lumas) == 6


def test_a_hard_link_of_the_input_is_the_input(clip, tmp_path, run_cli):
    """Even with --force: replacing the name would be harmless, but writing "over the input"
    is never what was meant."""
    link = tmp_path / "same.mp4"
    link.hardlink_to(clip.path)
    r = run_cli("enhance", clip.path, "-o", link, *NO_MODEL, "--force")
    assert r.code == 3 and "overwrite the input" in r.err, r.err


def test_a_dangling_link_at_the_output_is_refused_too(clip, tmp_path, run_cli):
    out = tmp_path / "up.mp4"
    out.symlink_to(tmp_path / "elsewhere.mp4")
    r = run_cli("enhance", clip.path, "-o", out, *NO_MODEL)
    assert r.code == 3 and "output exists" in r.err, r.err


def images(folder: Path, names: list[str]) -> Path:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), np.full((12, 16, 3), 90, np.uint8))
    return folder


def test_existing_images_in_the_output_folder_are_refused(tmp_path, run_cli):
    src = images(tmp_path / "in", ["a.png", "b.png", "sub/c.png"])
    out = images(tmp_path / "out", ["b.png", "sub/c.png"])
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    r = run_cli("enhance", src, "-o", out, *NO_MODEL)
    assert r.code == 3 and len(r.err_lines) == 1, r.err
    assert "2 of the output images exist already" in r.err and "b.png" in r.err and "--force" in r.err
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == before
    assert not (out / "a.png").exists()


def test_existing_single_image_is_refused(tmp_path, run_cli):
    src = images(tmp_path, ["in.png"]) / "in.png"
    out = images(tmp_path, ["out.png"]) / "out.png"
    before = out.read_bytes()
    r = run_cli("enhance", src, "-o", out, *NO_MODEL)
    assert r.code == 3 and "output exists" in r.err, r.err
    assert out.read_bytes() == before


def test_an_output_that_appears_during_the_run_is_not_replaced(clip, tmp_path, models_dir, monkeypatch):
    """The check before the run cannot see a file that another process writes meanwhile;
    the final move does not replace it either (without --force)."""
    from streamsr.enhance import EnhanceOptions, enhance
    from streamsr.errors import OutputError
    from streamsr.sinks import av_sink

    out = tmp_path / "up.mp4"
    real_close = av_sink.AvFileSink.close

    def close_after_someone_else_wrote(self, complete=True):
        out.write_bytes(b"written by another run")
        real_close(self, complete)

    monkeypatch.setattr(av_sink.AvFileSink, "close", close_after_someone_else_wrote)
    with pytest.raises(OutputError, match="appeared during the run"):
        enhance(clip.path, out, EnhanceOptions(model=str(models_dir / "near_x2.json")))
    assert out.read_bytes() == b"written by another run"
    assert leftovers(tmp_path, ["up.mp4"]) == []
