"""The README's two newcomer commands stay true: CI runs the same test command."""
from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines()]


def test_readme_starts_with_install_and_demo_then_tests():
    install_and_run, install_and_test = _readme_commands()[:2]
    assert install_and_run == "pip install . && streamsr demo"
    assert "pytest" in install_and_test and "torch==2.13.0" in install_and_test


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = _readme_commands()[1]
    assert test_command in [line.strip() for line in ci]


def test_the_python_api_example_runs(clip_factory, models_dir, monkeypatch, capsys, tmp_path):
    """The README's API example, on a clip instead of a webcam and with the window stubbed out."""
    import cv2

    text = (ROOT / "README.md").read_text()
    code = text.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "cv2.VideoCapture(0)" in code and "streamsr.Upscaler(scale=2)" in code
    clip = clip_factory("readme_api.mp4", frames=3)
    code = code.replace("cv2.VideoCapture(0)", f"cv2.VideoCapture({str(clip.path)!r})")
    code = code.replace("streamsr.Upscaler(scale=2)", f"streamsr.Upscaler(model={str(models_dir / 'near_x2.json')!r})")
    shown = []
    monkeypatch.setattr(cv2, "imshow", lambda name, image: shown.append(image.shape))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: -1)
    script = tmp_path / "readme_example.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")
    w, h = clip.size
    assert shown == [(2 * h, 2 * w, 3)] * 3
    assert "near_x2 on" in capsys.readouterr().out
