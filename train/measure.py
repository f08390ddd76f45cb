"""Measure a shipped card again: its selfcheck and, with ``--eval``, its clean and compressed metrics.

The ``selfcheck`` is the trained torch model's PSNR on a small image made by code. Export
writes it into every card; ``tests/test_cards.py`` runs the shipped ONNX file on the same
image and must reproduce it, which catches a wrong, stale or damaged ONNX file.

    python -m train.measure engines/espcn_x2.json [...] \
        [--eval ../shared/data/eval/Set5 --eval ../shared/data/eval/Set14 --lr-degrade jpeg:40 --lr-degrade h264:28]
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from streamsr.errors import ModelError
from streamsr.evaluate import CHECK_IMAGE, check_image, evaluate_images
from streamsr.lr_degrade import LRDegradation
from streamsr.models import build_model
from streamsr.types import ModelCard
from train.cli import report_errors

TOLERANCE_DB = 0.02  # ONNX Runtime against torch, float32: measured differences are < 0.001 dB


def torch_selfcheck(model: nn.Module, scale: int) -> dict[str, Any]:
    image = check_image(scale)
    model = model.eval()

    def upscale(lr_y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(lr_y)[None, None])[0, 0].numpy()

    r = evaluate_images([image], scale, upscale)
    return {"image": CHECK_IMAGE, "psnr": round(r["psnr"], 4), "bicubic_psnr": round(r["bicubic_psnr"], 4)}


def load_card_model(card: ModelCard) -> nn.Module:
    if not card.torch_weights:
        raise ModelError(f"card {card.name} names no torch weights")
    model = build_model(card.arch, card.scale, **card.arch_kwargs)
    model.load_state_dict(torch.load(card.file(card.torch_weights), map_location="cpu", weights_only=True))
    return model


def rewrite(
    card_path: Path, eval_dirs: list[Path] | None = None, lr_degrade: list[LRDegradation] | None = None, threads: int = 1
) -> dict[str, Any]:
    """Write the card's selfcheck (from its torch weights) and, given folders, its metrics anew."""
    from train.export import card_metrics

    card = ModelCard.load(card_path)
    check = torch_selfcheck(load_card_model(card), card.scale)
    metrics = {**card.metrics, "selfcheck": check}
    if eval_dirs:
        metrics = {"selfcheck": check, **card_metrics(card, eval_dirs, lr_degrade or [], threads)}
    ModelCard(**{**card.__dict__, "metrics": metrics}).save(card_path)
    return check


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.measure", description=__doc__.split("\n\n")[0])
    p.add_argument("cards", nargs="+", type=Path)
    p.add_argument("--eval", action="append", default=[], type=Path, metavar="DIR", help="measure on this folder (repeatable)")
    p.add_argument("--lr-degrade", action="append", default=[], metavar="SPEC", help="jpeg:Q, h264:CRF, hevc:CRF (repeatable)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    def run() -> int:
        degradations = [LRDegradation.parse(d) for d in args.lr_degrade]
        for path in args.cards:
            check = rewrite(path, args.eval, degradations, args.threads)
            print(f"{path}: selfcheck {check['psnr']:.4f} dB (bicubic {check['bicubic_psnr']:.4f})")
        return 0

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())
