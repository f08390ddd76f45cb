"""Every shipped model: its card is complete and its ONNX file reproduces the card's numbers."""
from __future__ import annotations

from pathlib import Path

import pytest

from streamsr.evaluate import check_image, evaluate_images, onnx_upscaler
from streamsr.types import ModelCard
from streamsr.hashing import file_sha256
from train.config import REPO_ROOT

CARDS = sorted((REPO_ROOT / "engines").glob("*.json"))
TOLERANCE_DB = 0.02  # train.measure.TOLERANCE_DB: ONNX Runtime against the torch model, float32


def test_there_are_shipped_cards() -> None:
    assert len(CARDS) >= 3


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_onnx_reproduces_the_cards_selfcheck(path: Path) -> None:
    card = ModelCard.load(path)
    assert file_sha256(card.file(card.onnx)) == card.onnx_sha256
    check = card.metrics["selfcheck"]
    image = check_image(card.scale)
    r = evaluate_images([image], card.scale, onnx_upscaler(card, threads=1))
    assert r["bicubic_psnr"] == pytest.approx(check["bicubic_psnr"], abs=1e-3)  # the same image
    assert r["psnr"] == pytest.approx(check["psnr"], abs=TOLERANCE_DB)
    assert r["psnr"] > r["bicubic_psnr"]  # every shipped model beats bicubic on it
