"""Speed of a card's int8 file in each layout of train/quantize.py (as exported, channel-equalised),
beside fp32: what ``train.quantize.EQUALISED_MARGIN_DB`` weighs against fidelity.

    python benchmarks/int8_layouts.py espcn_x2 repsr_x3 --calib ../shared/data/train/T91 \\
        --calib ../shared/data/train/BSDS200 --json benchmarks/results/<date>-int8-layouts.json

Each layout's file is quantised post-training at that layout's best calibration percentile (the
held-out training images pick it, as ``train.quantize`` does), then timed on one 352x288 luma
frame, 2 threads: the best of 7 rounds of 10 runs, the files in turn (cpu_timing.py). Pause any
training first.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cpu_timing import engine_ms  # noqa: E402
from streamsr.types import ModelCard  # noqa: E402
from train.sessions import hardware  # noqa: E402
from train.quantize import (best_per_layout, calibrate, calibration_patches, calibration_split,  # noqa: E402
                            held_out_images, run_on)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="card names in engines/")
    p.add_argument("--calib", action="append", required=True, type=Path, metavar="DIR", help="training images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    calib, held = calibration_split(args.calib)
    x = np.random.default_rng(0).random((1, 1, 288, 352), dtype=np.float32)
    rows = []
    for name in args.models:
        card = ModelCard.load(ROOT / "engines" / f"{name}.json")
        fp32 = card.file(card.onnx)
        planes = held_out_images(held, card.scale)
        with tempfile.TemporaryDirectory() as tmp:
            candidates = calibrate(card, fp32, calibration_patches(calib, card.scale), planes,
                                   run_on(card, fp32, planes), Path(tmp))
            files = {"fp32": fp32} | {f"int8 {layout}": c.int8 for layout, c in best_per_layout(candidates).items()}
            for label, times in engine_ms(files, x, args.threads).items():
                rows.append({"model": name, "file": label, **times})
    print(f"352x288 luma, {args.threads} threads; {hardware()}")
    print(f"{'model':14s} {'file':16s} {'ORT ms':>8s} {'OpenVINO ms':>12s}")
    for r in rows:
        print(f"{r['model']:14s} {r['file']:16s} {r['onnxruntime_ms']:8.2f} {r['openvino_ms']:12.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": hardware(), "threads": args.threads, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
