"""Speed of the deployed RepSR network in several shapes (features x blocks), beside its MACs:
what a wider or deeper fast tier would cost on the CPU engines, which the MAC count alone does
not say (a channel count that is not a multiple of the SIMD width runs at about the next
multiple's cost).

    python benchmarks/repsr_shapes.py --shape 24x7 --shape 25x7 --shape 32x7 --shape 16x18 \\
        --scale 2 --json benchmarks/results/<date>-repsr-shapes.json

Random weights (the speed does not depend on them), exported as the shipped files are
(train.export.export_onnx), timed on one 352x288 luma frame, fp32, 2 threads: the best of 7
rounds of 10 runs, the shapes in turn (cpu_timing.py). Ratios are to the first shape. Pause any
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
from streamsr.models import build_model, macs_per_pixel  # noqa: E402
from train.export import export_onnx  # noqa: E402
from train.sessions import hardware  # noqa: E402


def shape(text: str) -> tuple[int, int]:
    features, blocks = text.lower().split("x")
    return int(features), int(blocks)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", action="append", required=True, type=shape, metavar="FxB",
                   help="features x blocks, e.g. 24x7; the first is the reference")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    x = np.random.default_rng(0).random((1, 1, 288, 352), dtype=np.float32)
    espcn = macs_per_pixel(build_model("espcn", args.scale), args.scale)
    rows, files = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for features, blocks in args.shape:
            model = build_model("repsr", args.scale, deploy=True, features=features, blocks=blocks, expansion=0)
            files[f"{features}x{blocks}"] = path = Path(tmp) / f"repsr_{features}x{blocks}.onnx"
            export_onnx(model, 1, path)
            rows.append({"features": features, "blocks": blocks, "macs_per_lr_pixel": macs_per_pixel(model, args.scale)})
        for row, times in zip(rows, engine_ms(files, x, args.threads).values()):
            row.update(times)
    ref = rows[0]
    print(f"RepSR x{args.scale} deployed, 352x288 luma, fp32, {args.threads} threads; {hardware()}")
    print(f"{'shape':>7s} {'MACs/px':>8s} {'x ESPCN':>8s} {'ORT ms':>8s} {'ratio':>6s} {'OpenVINO ms':>12s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['features']:>4d}x{r['blocks']:<2d} {r['macs_per_lr_pixel']:8,d} {r['macs_per_lr_pixel'] / espcn:7.2f}x"
              f" {r['onnxruntime_ms']:8.2f} {r['onnxruntime_ms'] / ref['onnxruntime_ms']:5.2f}x"
              f" {r['openvino_ms']:12.2f} {r['openvino_ms'] / ref['openvino_ms']:5.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"machine": hardware(), "scale": args.scale, "threads": args.threads,
                                         "espcn_macs_per_lr_pixel": espcn, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
