"""Folders of images: one unreadable image does not sink the others. Each failure is named,
the rest are written, and the exit status is non-zero at the end. Sub-folders are processed
and mirrored in the output; links to folders are reported, not followed."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from synth import leftovers


def image(path: Path, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((12, 16, 3), value, np.uint8))
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    src = tmp_path / "in"
    image(src / "a.png")
    image(src / "c.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    image(src / "cam2" / "x.png", 50)
    image(src / "cam2" / "night" / "y.png", 30)
    (src / "notes.txt").write_text("not an image")
    return src


def test_the_others_are_written_and_the_failure_named(tree, tmp_path, run_cli, model_args):
    out = tmp_path / "out"
    r = run_cli("enhance", tree, "-o", out, *model_args(2))
    assert r.code == 2, r.err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "c.jpg", "cam2/night/y.png", "cam2/x.png"]
    assert cv2.imread(str(out / "cam2" / "night" / "y.png")).shape == (24, 32, 3)
    errors = [line for line in r.err_lines if line.startswith("streamsr: error:")]
    assert len(errors) == 2 and "broken.png" in errors[0] and "1 of 5 images" in errors[1], r.err
    assert "Traceback" not in r.err


def test_every_image_unreadable_leaves_no_folder(tmp_path, run_cli, model_args):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.jpg"):
        (src / name).write_text("garbage")
    out = tmp_path / "out"
    r = run_cli("enhance", src, "-o", out, *model_args(2))
    assert r.code == 2 and "none of the 2 images" in r.err and "a.png" in r.err and "b.jpg" in r.err, r.err
    assert not out.exists()
    assert leftovers(tmp_path, ["in"]) == []


def test_a_linked_folder_is_reported_not_followed(tree, tmp_path, run_cli, model_args):
    elsewhere = image(tmp_path / "elsewhere" / "z.png").parent
    (tree / "broken.png").unlink()
    (tree / "link").symlink_to(elsewhere, target_is_directory=True)
    out = tmp_path / "out"
    r = run_cli("enhance", tree, "-o", out, *model_args(2))
    assert r.code == 0, r.err
    assert not (out / "link").exists()
    assert any("link" in line and "not followed" in line for line in r.err_lines), r.err


def test_an_output_folder_inside_the_input_is_not_read_back(tree, run_cli, model_args):
    (tree / "broken.png").unlink()
    out = tree / "x2"
    assert run_cli("enhance", tree, "-o", out, *model_args(2)).code == 0
    r = run_cli("enhance", tree, "-o", out, *model_args(2), "--force")
    assert r.code == 0, r.err
    assert not (out / "x2").exists()
