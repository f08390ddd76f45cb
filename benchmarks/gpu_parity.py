"""CUDA against the CPU for every shipped model, in fp32, fp16 and bf16 (the GPU issue, step 1).

    python benchmarks/gpu_parity.py [--models espcn_x2,...] [--json parity.json]

Each model runs the same batches of camera-like Y planes (the synthetic scene, different
frames in every batch) on ONNX Runtime's CPU engine in fp32, the reference, and on the CUDA
engine at each precision, with two batches in flight before the first is collected. Prints the
largest and mean absolute difference in grey levels and the PSNR of CUDA's output against the
reference; exits 1 when any difference is over its precision's tolerance. Needs a CUDA GPU.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from streamsr.backends import create_backend, cuda_visible
from streamsr.synthetic import scene_frames
from streamsr.zoo import available_models, resolve_model

# Largest absolute difference allowed, in 8-bit grey levels, after rounding to uint8.
TOLERANCE = {"fp32": 1, "fp16": 2, "bf16": 6}


def batches(width: int, height: int, n_batches: int, batch: int) -> list[np.ndarray]:
    frames = list(scene_frames(width, height, n_batches * batch, seed=3))
    luma = [np.rint(0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]).astype(np.uint8) for f in frames]
    return [np.stack(luma[i * batch:(i + 1) * batch]) for i in range(n_batches)]


def compare(reference: np.ndarray, got: np.ndarray) -> dict[str, float]:
    diff = np.abs(reference.astype(np.int16) - got.astype(np.int16))
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    return {"max_abs": int(diff.max()), "mean_abs": round(float(diff.mean()), 4),
            "psnr_db": round(10 * np.log10(255.0**2 / mse), 2) if mse > 0 else float("inf")}


def check_model(name: str, inputs: list[np.ndarray], engine: str, precisions: list[str]) -> list[dict]:
    card = resolve_model(name, int(name.rsplit("_x", 1)[1]))
    with create_backend("onnxruntime", card, precision="fp32") as cpu:
        reference = [cpu.run(b) for b in inputs]
    rows = []
    for precision in precisions:
        with create_backend(engine, card, precision=precision) as gpu:
            gpu.run(inputs[0])  # warm-up: graphs, allocations
            outputs = []
            for first, second in zip(inputs[0::2], inputs[1::2]):
                a, b = gpu.submit(first), gpu.submit(second)  # two in flight, different inputs
                outputs += [a.result(), b.result()]
        stats = [compare(r, o) for r, o in zip(reference, outputs)]
        worst = max(s["max_abs"] for s in stats)
        rows.append({"model": name, "precision": precision, "max_abs": worst,
                     "mean_abs": round(float(np.mean([s["mean_abs"] for s in stats])), 4),
                     "psnr_db": min(s["psnr_db"] for s in stats), "tolerance": TOLERANCE[precision],
                     "ok": worst <= TOLERANCE[precision]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=None, help="comma-separated names (default: every shipped model)")
    p.add_argument("--size", default="480x270", help="input WxH")
    p.add_argument("--json", default=None)
    p.add_argument("--engine", default="cuda", help="the engine checked against the CPU reference (torch: try the script without a GPU)")
    p.add_argument("--precisions", default=",".join(TOLERANCE))
    a = p.parse_args(argv)
    if a.engine == "cuda" and not cuda_visible():
        print("gpu_parity: needs a CUDA GPU visible to torch", file=sys.stderr)
        return 2
    w, h = (int(v) for v in a.size.split("x"))
    inputs = batches(w, h, n_batches=4, batch=4)
    names = a.models.split(",") if a.models else [m for m in available_models() if m.rsplit("_x", 1)[-1].isdigit()]
    rows = []
    print(f"{'model':<16} {'precision':<9} {'max |d|':>7} {'mean |d|':>8} {'PSNR dB':>8}  ok")
    for name in names:
        for r in check_model(name, inputs, a.engine, a.precisions.split(",")):
            rows.append(r)
            print(f"{r['model']:<16} {r['precision']:<9} {r['max_abs']:>7} {r['mean_abs']:>8.4f} "
                  f"{r['psnr_db']:>8.2f}  {'yes' if r['ok'] else 'NO'}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"size": a.size, "rows": rows}, f, indent=2)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
