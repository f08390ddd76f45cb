"""PSNR/SSIM with compressed (or otherwise degraded) LR inputs, models side by side.

    python -m train.eval_degraded --model repsr_x2 --model repsr_cctv_x2 --scale 2 \\
        --data ../shared/data/eval/Set5 --lr-degrade none --lr-degrade jpeg:30 --lr-degrade h264:28

The HR image, the LR image and the scoring are those of ``streamsr eval`` (DESIGN.md
protocol); then the LR *luma* plane (uint8) goes through ``--lr-degrade``: ``jpeg:Q`` (grey
JPEG at quality Q, cv2), ``h264:CRF`` (libx264 intra frame, PyAV) or ``none``. Every model sees
the same degraded plane. The "bicubic" row upscales that degraded luma plane with MATLAB
bicubic (so its clean row differs from ``streamsr eval``'s, which resizes RGB, by ~0.01 dB).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from streamsr.errors import StreamSRError
from streamsr.evaluate import EvalImage, evaluate_images, load_dataset, onnx_upscaler, to_uint8
from streamsr.resize import imresize
from streamsr.zoo import resolve_model
from train.degrade import compress


def degrade_images(images: list[EvalImage], scale: int, spec: str) -> list[EvalImage]:
    """The same images with the LR luma degraded by ``spec``; bicubic recomputed from it."""
    out = []
    for im in images:
        lr = compress(im.lr_y.astype(np.float64) * 255.0, spec)
        bic = to_uint8(imresize(lr.astype(np.float64), scale)).astype(np.float64)
        out.append(EvalImage(im.name, im.hr_y, (lr / 255.0).astype(np.float32), bic))
    return out


def run(models: list[str], scale: int, folders: list[str], specs: list[str], threads: int | None) -> dict[str, Any]:
    cards = [resolve_model(m, scale) for m in models]
    upscalers = {c.name: onnx_upscaler(c, threads) for c in cards}
    results: dict[str, Any] = {}
    for folder in folders:
        clean = load_dataset(folder, scale)
        ds = results.setdefault(Path(folder).name, {})
        for spec in specs:
            images = degrade_images(clean, scale, spec)
            row: dict[str, Any] = {}
            base = evaluate_images(images, scale)
            row["bicubic"] = {"psnr": base["bicubic_psnr"], "ssim": base["bicubic_ssim"]}
            for name, up in upscalers.items():
                r = evaluate_images(images, scale, up)
                row[name] = {"psnr": r["psnr"], "ssim": r["ssim"]}
            ds[spec] = row
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.eval_degraded", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True, help="model name or card (repeatable)")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--data", action="append", required=True, metavar="DIR", help="folder of HR images (repeatable)")
    p.add_argument("--lr-degrade", action="append", default=[], metavar="SPEC", help="none | jpeg:Q | h264:CRF (repeatable)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    specs = args.lr_degrade or ["none"]
    try:
        results = run(args.model, args.scale, args.data, specs, args.threads)
    except StreamSRError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    for ds, rows in results.items():
        names = list(next(iter(rows.values())))
        print(f"{ds} x{args.scale}: PSNR / SSIM on Y, LR luma degraded as given")
        print(f"{'LR input':<10} " + " ".join(f"{n:>20}" for n in names))
        for spec, row in rows.items():
            cells = [f"{row[n]['psnr']:.2f} / {row[n]['ssim']:.4f}" for n in names]
            print(f"{spec:<10} " + " ".join(f"{c:>20}" for c in cells))
    if args.json:
        Path(args.json).write_text(json.dumps({"scale": args.scale, "datasets": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
