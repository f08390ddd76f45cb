"""Static int8 quantisation of a shipped model, calibrated on training patches, loss measured.

    python -m train.quantize engines/espcn_x2.json --calib ../shared/data/train/T91 --calib ../shared/data/train/BSDS200 \\
        --eval ../shared/data/eval/Set5 --eval ../shared/data/eval/Set14 --lr-degrade jpeg:40 --lr-degrade h264:28

ONNX Runtime's static QDQ quantiser: weights int8 per output channel, activations uint8 per
tensor (u8s8, the pair the x86 int8 kernels run, VNNI or not), ranges calibrated on LR luma
patches of the *training* images (percentile calibration: a few extreme pixels do not
stretch the range). Two choices are measured, on ESPCN x2 / Set5 (2-core AMD EPYC, AVX2 without
VNNI): weights use 7 bits (``reduce_range``), because full-range int8 weights overflow the
16-bit pair sums of x86's u8s8 kernels without VNNI (9.8 dB lost, against 1.0 dB with 7 bits);
and the first and last convolutions stay float (0.25 dB lost instead of 1.0 dB): the first
sees the image itself, the last makes the output pixels, and together they are 13 % of the
MACs. Only convolutions are quantised: a global residual's Add and the pixel shuffle stay float,
since a uint8 round of the output image costs more than all the inner convs together (RepSR x2
Set5: 0.24 dB lost with them quantised, 0.16 without, before QAT). The int8 file goes beside the fp32 one (``<name>.int8.onnx``); the card
gets ``onnx_int8`` and ``int8_psnr_loss_db``: the largest PSNR drop against the fp32 file
over every dataset and LR input measured. ``--precision auto`` uses int8 only when that loss
is within the card's ``int8_tolerance_db``. Both ONNX Runtime and OpenVINO run the file.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from streamsr.errors import ModelError
from streamsr.evaluate import evaluate_models, image_files, read_image
from streamsr.lr_degrade import LRDegradation
from streamsr.metrics import image_to_y
from streamsr.resize import imresize
from streamsr.types import ModelCard
from streamsr.hashing import file_sha256
from train.cli import report_errors

log = logging.getLogger(__name__)
DEFAULT_TOLERANCE_DB = 0.1


def calibration_patches(dirs: list[Path], scale: int, count: int = 48, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """``count`` LR luma patches (1, 1, size, size) in [0, 1], from random training images."""
    rng = np.random.default_rng(seed)
    files = [f for d in dirs for f in image_files(d)]
    patches = []
    while len(patches) < count:
        img = read_image(files[int(rng.integers(len(files)))])
        lr = np.round(image_to_y(np.clip(np.round(imresize(img, 1.0 / scale)), 0, 255).astype(np.uint8))) / 255.0
        if min(lr.shape) < size:
            continue
        y, x = int(rng.integers(lr.shape[0] - size + 1)), int(rng.integers(lr.shape[1] - size + 1))
        patches.append(lr[None, None, y : y + size, x : x + size].astype(np.float32))
    return patches


def edge_convs(onnx_path: Path) -> list[str]:
    """Names of the first and the last Conv node: kept in float (see the module docstring)."""
    import onnx

    convs = [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv"]
    return sorted({convs[0], convs[-1]}) if convs else []


def quantize_onnx(fp32: Path, int8: Path, patches: list[np.ndarray], keep_float: list[str] | None = None) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Patches(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(patches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {"lr": x}

    partial = int8.with_name(int8.name + ".partial")
    try:
        quantize_static(
            str(fp32), str(partial), Patches(),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            per_channel=True, reduce_range=True, calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": 99.999}, nodes_to_exclude=keep_float or [],
            op_types_to_quantize=["Conv"],
        )
        os.replace(partial, int8)
    finally:
        partial.unlink(missing_ok=True)


def int8_loss(card: ModelCard, eval_dirs: list[Path], degradations: list[LRDegradation], threads: int) -> dict[str, Any]:
    """PSNR of fp32 and int8 on every dataset and input; the largest drop."""
    assert card.onnx_int8
    int8_card = ModelCard(**{**card.__dict__, "name": card.name + "@int8", "onnx": card.onnx_int8})
    results = evaluate_models([card, int8_card], eval_dirs, card.scale, degradations, threads)
    drops = {
        f"{ds} {spec}": round(row[card.name]["psnr"] - row[int8_card.name]["psnr"], 4)
        for ds, rows in results.items() for spec, row in rows.items()
    }
    return {"max": max(drops.values()), "per_input": drops}


def quantize_card(
    card_path: Path, calib_dirs: list[Path], eval_dirs: list[Path], degradations: list[LRDegradation],
    tolerance: float = DEFAULT_TOLERANCE_DB, threads: int = 1,
) -> ModelCard:
    card = ModelCard.load(card_path)
    if card.colour != "y":
        raise ModelError(f"model {card.name}: only Y-channel models are quantised so far")
    int8_path = card.file(card.onnx).with_name(Path(card.onnx).stem + ".int8.onnx")
    fp32_path = card.file(card.onnx)
    quantize_onnx(fp32_path, int8_path, calibration_patches(calib_dirs, card.scale), edge_convs(fp32_path))
    card = ModelCard(**{**card.__dict__, "onnx_int8": int8_path.name, "onnx_int8_sha256": file_sha256(int8_path)})
    loss = int8_loss(card, eval_dirs, [LRDegradation()] + degradations, threads)
    log.info("%s int8: largest PSNR loss %.3f dB (%s)", card.name, loss["max"], loss["per_input"])
    card = ModelCard(**{**card.__dict__, "int8_psnr_loss_db": loss["max"], "int8_tolerance_db": tolerance})
    card.save(card_path)
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.quantize", description=__doc__.split("\n\n")[0])
    p.add_argument("cards", nargs="+", type=Path)
    p.add_argument("--calib", action="append", required=True, type=Path, metavar="DIR", help="training images")
    p.add_argument("--eval", action="append", required=True, type=Path, metavar="DIR", help="measure the loss here")
    p.add_argument("--lr-degrade", action="append", default=[], metavar="SPEC", help="also on compressed LR")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_DB, help="dB of loss that auto accepts")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    def run() -> int:
        degradations = [LRDegradation.parse(d) for d in args.lr_degrade]
        for path in args.cards:
            card = quantize_card(path, args.calib, args.eval, degradations, args.tolerance, args.threads)
            print(f"{path}: {card.onnx_int8}, largest PSNR loss {card.int8_psnr_loss_db:.3f} dB")
        return 0

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())
