"""``streamsr eval``: PSNR/SSIM of models beside bicubic on folders of HR images, clean or compressed LR."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from streamsr.errors import InputError, OutputError
from streamsr.evaluate import evaluate_models
from streamsr.lr_degrade import LRDegradation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", action="append", metavar="NAME",
        help="model name (espcn, espcn_x2), card path, or 'bicubic'; repeat to compare (default espcn)",
    )
    parser.add_argument("--scale", type=int, default=2, help="upscaling factor (default 2)")
    parser.add_argument(
        "--data", action="append", required=True, metavar="DIR", help="folder of HR images (repeatable)"
    )
    parser.add_argument(
        "--lr-degrade", action="append", metavar="SPEC",
        help="compress the LR first: none, jpeg:Q, h264:CRF or hevc:CRF (repeatable; default none)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")


def _fmt(v: float | None, digits: int) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    from streamsr.zoo import resolve_model

    if args.scale < 1:
        raise InputError(f"--scale must be a positive integer, got {args.scale}")
    degradations = [LRDegradation.parse(d) for d in (args.lr_degrade or ["none"])]
    names = args.model or ["espcn"]
    cards = [resolve_model(m, args.scale) for m in names if m != "bicubic"]
    results = evaluate_models(cards, args.data, args.scale, degradations, getattr(args, "threads", None))
    columns = ["bicubic"] + [c.name for c in cards]
    print(f"x{args.scale}: PSNR / SSIM on Y (DESIGN.md protocol); LR input as given (QP: the H.264 clip's mean quantiser)")
    print(f"{'dataset':<10} {'LR input':<20} " + " ".join(f"{c:>20}" for c in columns))
    for ds, rows in results.items():
        for deg, row in rows.items():
            cells = [f"{_fmt(row[c]['psnr'], 2)} / {_fmt(row[c]['ssim'], 4)}" for c in columns]
            label = f"{deg} (QP {row['mean_qp']:.1f})" if "mean_qp" in row else deg
            print(f"{ds:<10} {label:<20} " + " ".join(f"{c:>20}" for c in cells))
    if args.json:
        payload = {"models": [c.name for c in cards], "scale": args.scale, "datasets": results}
        try:
            Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        except OSError as e:
            raise OutputError(f"cannot write {args.json}: {e}") from None
    return 0
