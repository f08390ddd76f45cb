"""How much a model loses along image edges: Y-PSNR with 1, 2, 4 and 8 LR pixels shaved.

    python benchmarks/edge_check.py --scale 2 --model espcn_x2 --model repsr_x2 [--json out.json]

On the 10 images that training holds out (``train.data.split_holdout``; never Set5/Set14), each
model's gain over bicubic of the same LR, with the border shaved by 1 LR pixel (the evaluation
protocol's ``scale`` HR pixels) and by more. A model that handles image edges as well as the
interior gains about the same at every shave; one that rises as the shave grows loses that
much along the edges, where the protocol still counts. The last column, the gain at 2 LR pixels
less the gain at 1, is where edge garbage shows (a model trained with edges in its loss moves
by 0.01 dB there; a little further rise with the shave is common to all models).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamsr.evaluate import onnx_upscaler, prepare, read_image  # noqa: E402
from streamsr.zoo import resolve_model  # noqa: E402
from train.data import split_holdout  # noqa: E402

SHAVES_LR = (1, 2, 4, 8)
TRAIN_DIRS = [REPO / "../shared/data/train/T91", REPO / "../shared/data/train/BSDS200"]


def psnr(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    diff = (a - b)[shave:-shave, shave:-shave]
    return float(10 * np.log10(255.0**2 / np.mean(diff**2)))


def to_255(plane: np.ndarray) -> np.ndarray:
    """A model's output in [0, 1] as the protocol scores it (rounded 8-bit; HR and bicubic are already)."""
    return np.clip(np.round(plane * 255.0), 0, 255)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--model", action="append", required=True, help="a card's name in engines/")
    p.add_argument("--holdout", type=int, default=10)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    _, held_out = split_holdout(TRAIN_DIRS, a.holdout)
    images = [prepare(read_image(f), a.scale, f.name) for f in held_out]
    rows = []
    print(f"{len(images)} held-out images, x{a.scale}; gain over bicubic (dB) with the border shaved by")
    print(f"{'model':<22}" + "".join(f"{f'{s} LR px':>10}" for s in SHAVES_LR) + f"{'1 -> 2 px':>11}")
    for name in a.model:
        upscale = onnx_upscaler(resolve_model(name, a.scale), threads=1)
        gains = []
        for shave in SHAVES_LR:
            hr_shave = shave * a.scale
            per_image = [psnr(to_255(upscale(im.lr_y)), im.hr_y, hr_shave) - psnr(im.bicubic_y, im.hr_y, hr_shave)
                         for im in images]
            gains.append(round(float(np.mean(per_image)), 3))
        edge_loss = round(gains[1] - gains[0], 3)
        rows.append({"model": name, "gain_db_by_shave_lr": dict(zip(map(str, SHAVES_LR), gains)), "edge_loss_db": edge_loss})
        print(f"{name:<22}" + "".join(f"{g:>+10.2f}" for g in gains) + f"{edge_loss:>11.2f}", flush=True)
    if a.json:
        a.json.write_text(json.dumps({"scale": a.scale, "images": [im.name for im in images], "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
