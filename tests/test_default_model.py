"""The default model: the best on compressed input among shipped models of the fast tier's cost."""
from __future__ import annotations

from pathlib import Path

import pytest

from streamsr import zoo
from streamsr.types import ModelCard


def _card(folder: Path, name: str, scale: int, macs: int, h264: float | None, jpeg: float | None,
          clean: float | None = None) -> None:
    compressed = {}
    if h264 is not None:
        compressed["h264:28"] = {"psnr": h264}
    if jpeg is not None:
        compressed["jpeg:40"] = {"psnr": jpeg}
    metrics: dict = {"compressed": {"Set14": compressed}} if compressed else {}
    if clean is not None:
        metrics["Set14"] = {"psnr": clean}
    card = ModelCard(name=name, arch="espcn", scale=scale, colour="y", params=1, macs_per_pixel=macs,
                     onnx=f"{name}.onnx", metrics=metrics)
    (folder / f"{name}.json").write_text(card.to_json())
    (folder / f"{name}.onnx").write_bytes(b"x")


@pytest.fixture()
def engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(zoo, "engines_dirs", lambda: [tmp_path])
    return tmp_path


def test_best_compressed_within_the_fast_tier_budget(engines: Path) -> None:
    budget = 2 * zoo.espcn_macs(2)
    _card(engines, "espcn_x2", 2, zoo.espcn_macs(2), 28.0, 28.0)
    _card(engines, "fast_x2", 2, budget, 28.5, 28.9)  # at the budget: eligible
    _card(engines, "cctv_x2", 2, budget - 1, 29.0, 29.0)  # the best mean (29.0 > 28.7)
    _card(engines, "big_x2", 2, budget + 1, 31.0, 31.0)  # better but too costly
    _card(engines, "half_x2", 2, 100, 35.0, None)  # not measured on both inputs
    _card(engines, "cctv_x3", 3, 100, 40.0, 40.0)  # another scale
    assert zoo.default_model(2) == "cctv_x2"
    assert zoo.resolve_model(None, 2).name == "cctv_x2"
    assert zoo.default_model(3) == "cctv_x3"


def test_falls_back_to_espcn_without_measurements(engines: Path) -> None:
    _card(engines, "espcn_x4", 4, zoo.espcn_macs(4), None, None)
    _card(engines, "other_x4", 4, 1000, None, None)
    assert zoo.default_model(4) == "espcn_x4"
    assert zoo.resolve_model(None, 4).name == "espcn_x4"


def test_espcn_cost_unit() -> None:
    assert [zoo.espcn_macs(s) for s in (2, 3, 4)] == [21_184, 22_624, 24_640]


def test_clean_input_takes_the_best_clean_model_within_the_budget(engines: Path) -> None:
    budget = 2 * zoo.espcn_macs(2)
    _card(engines, "espcn_x2", 2, zoo.espcn_macs(2), 28.0, 28.0, clean=31.6)
    _card(engines, "fast_x2", 2, budget, 28.5, 28.5, clean=32.8)  # the best clean within the budget
    _card(engines, "cctv_x2", 2, budget - 1, 29.0, 29.0, clean=31.5)  # the best compressed
    _card(engines, "big_x2", 2, budget + 1, 30.0, 30.0, clean=33.0)  # too costly
    assert zoo.default_model(2, "clean") == "fast_x2"
    assert zoo.default_model(2, "compressed") == zoo.default_model(2) == "cctv_x2"
