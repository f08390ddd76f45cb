"""Picture quality of every shipped model (and of the peers), clean and on compressed input.

    python benchmarks/quality.py --scale 2 --data ../shared/data/eval/Set5 --data ../shared/data/eval/Set14 \\
        [--model repsr_x2 ...] [--peers ../shared/peers/opencv_dnn_superres] [--json bench-results/quality_x2.json]

Y-PSNR/SSIM by the DESIGN.md protocol (``streamsr eval``), with the LR image as given by each
``--lr-degrade`` (default: clean, JPEG 40 and 75 in 4:2:0 colour, H.264 CRF 28 and 35 clips of
LR crops; :mod:`streamsr.lr_degrade`). Every model sees the same input; the bicubic column is
bicubic of that input. ``--peers`` adds OpenCV dnn_superres's published ESPCN and FSRCNN graphs,
run through ``cv2.dnn`` on the same luma (their graphs need OpenCV 4.x: OpenCV 5 cannot import
ESPCN's DepthToSpace; ``pip install opencv-contrib-python-headless==4.10.0.84`` in a separate
venv). Peers are measured, never shipped or copied.

Prints one table per dataset and writes JSON (default ``bench-results/quality_x<s>.json``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamsr.colour import full_range_to_unit, unit_to_full_range  # noqa: E402
from streamsr.evaluate import evaluate_images, load_dataset, onnx_upscaler  # noqa: E402
from streamsr.lr_degrade import LRDegradation  # noqa: E402
from streamsr.types import ModelCard  # noqa: E402
from streamsr.zoo import available_models, resolve_model  # noqa: E402

DEFAULT_DEGRADATIONS = ["none", "jpeg:40", "jpeg:75", "h264:28", "h264:35"]
PEERS = ("ESPCN", "FSRCNN", "FSRCNN-small")


def peer_macs(kind: str, scale: int) -> int:
    """MACs per LR pixel of the peer graphs: ESPCN 5x5x64, 3x3x32, 3x3 to s^2; FSRCNN(d, s, m)
    5x5 to d, 1x1 to s, m 3x3, 1x1 to d, then a 9x9 deconvolution (whose cost per LR pixel
    does not depend on the scale)."""
    if kind == "ESPCN":
        return 25 * 64 + 9 * 64 * 32 + 9 * 32 * scale * scale
    d, s, m = (56, 12, 4) if kind == "FSRCNN" else (32, 5, 1)
    return 25 * d + d * s + m * 9 * s * s + s * d + 81 * d
Upscaler = Callable[[np.ndarray], np.ndarray]


def peer_upscaler(pb: Path) -> Upscaler:
    import cv2

    cv2.dnn_superres.DnnSuperResImpl_create()  # registers the DepthToSpace layer that ESPCN uses
    net = cv2.dnn.readNetFromTensorflow(str(pb))

    def upscale(lr_y: np.ndarray) -> np.ndarray:
        # dnn_superres feeds its nets full-range Y (OpenCV's YCrCb); the protocol's Y is limited range
        net.setInput(unit_to_full_range(lr_y)[None, None].astype(np.float32))
        return full_range_to_unit(net.forward()[0, 0])

    return upscale


def shipped_cards(scale: int, names: list[str] | None) -> list[ModelCard]:
    names = names or [n for n in available_models() if n.endswith(f"_x{scale}")]
    return [resolve_model(n, scale) for n in names]


def measure(
    upscalers: dict[str, Upscaler], folders: list[str], scale: int, degradations: list[LRDegradation]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for folder in folders:
        rows = results.setdefault(Path(folder).name, {})
        for deg in degradations:
            images = load_dataset(folder, scale, deg)
            base = evaluate_images(images, scale)
            row = {"bicubic": {"psnr": base["bicubic_psnr"], "ssim": base["bicubic_ssim"]}}
            for name, up in upscalers.items():
                r = evaluate_images(images, scale, up)
                row[name] = {"psnr": r["psnr"], "ssim": r["ssim"]}
            rows[str(deg)] = row
            print(f"  {Path(folder).name} {deg}: done", file=sys.stderr, flush=True)
    return results


def print_tables(results: dict[str, Any], scale: int, macs: dict[str, int]) -> None:
    for ds, rows in results.items():
        specs = list(rows)
        print(f"\n{ds} x{scale}: Y-PSNR (dB) / SSIM; LR input as in the column header")
        print("| model | MACs / LR px | " + " | ".join(specs) + " |")
        print("|---|---:|" + "---|" * len(specs))
        for name in rows[specs[0]]:
            cells = [f"{rows[s][name]['psnr']:.2f} / {rows[s][name]['ssim']:.4f}" for s in specs]
            print(f"| {name} | {macs.get(name, 0):,} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--data", action="append", required=True, metavar="DIR")
    p.add_argument("--model", action="append", help="shipped model (default: every one at --scale)")
    p.add_argument("--lr-degrade", action="append", metavar="SPEC")
    p.add_argument("--peers", type=Path, help="folder of OpenCV dnn_superres .pb graphs (measured, never copied)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    degradations = [LRDegradation.parse(s) for s in (args.lr_degrade or DEFAULT_DEGRADATIONS)]
    cards = shipped_cards(args.scale, args.model)
    upscalers: dict[str, Upscaler] = {c.name: onnx_upscaler(c, args.threads) for c in cards}
    macs = {c.name: c.macs_per_pixel for c in cards}
    if args.peers:
        for kind in PEERS:
            pb = args.peers / f"{kind}_x{args.scale}.pb"
            if pb.exists():
                upscalers[f"peer:{kind}"] = peer_upscaler(pb)
                macs[f"peer:{kind}"] = peer_macs(kind, args.scale)
        if not any(name.startswith("peer:") for name in upscalers):
            print(f"error: --peers {args.peers}: no {', '.join(f'{k}_x{args.scale}.pb' for k in PEERS)} there",
                  file=sys.stderr)
            return 2
    results = measure(upscalers, args.data, args.scale, degradations)
    print_tables(results, args.scale, macs)
    out = args.json or REPO / "bench-results" / f"quality_x{args.scale}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"scale": args.scale, "macs_per_lr_pixel": macs, "datasets": results}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
