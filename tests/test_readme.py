"""The README's two newcomer commands stay true: CI runs the same test command."""
from __future__ import annotations

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
