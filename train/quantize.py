"""Static int8 quantisation of a shipped model, calibrated on training patches, loss measured.

    python -m train.quantize engines/espcn_x2.json --calib ../shared/data/train/T91 --calib ../shared/data/train/BSDS200 \\
        --eval ../shared/data/eval/Set5 --eval ../shared/data/eval/Set14 --lr-degrade jpeg:40 --lr-degrade h264:28

ONNX Runtime's static QDQ quantiser: weights int8 per output channel, activations uint8 per
tensor (u8s8, the pair the x86 int8 kernels run, VNNI or not), ranges calibrated on LR luma
patches of the *training* images by a percentile of each tensor's histogram (a few extreme
pixels do not stretch the range). Choices, each measured (Set5 PSNR lost, 2-core AMD EPYC with
AVX2 and no VNNI):

- Weights use 7 bits (``reduce_range``): full-range int8 weights overflow the 16-bit pair sums
  of x86's u8s8 kernels without VNNI (ESPCN x2: 9.8 dB lost, against 1.0 dB with 7 bits).
- Only convolutions are quantised: a global residual's Add and the pixel shuffle stay float,
  since a uint8 round of the output image costs more than all the inner convs together (RepSR
  x2: 0.24 dB lost with them quantised, 0.16 without).
- The first and the last convolution stay float (ESPCN x2: 0.25 dB lost instead of 1.0): the
  first sees the image itself, the last makes the output pixels. In a deeper network the conv
  that feeds the last stays float too (RepSR x2: 0.16 -> 0.12 dB; 14 % of its MACs): its uint8
  output is the feature map that every output pixel is made from.
- A quantised conv whose output only a Tanh reads gets the range +-``TANH_RANGE`` rather than a
  calibrated one: past it the Tanh saturates (ESPCN x2 after 125k steps: its middle conv's
  outputs reach +-5.6, and the calibrated range cost 0.24 dB on Set5, 0.13 with the cut).
- The percentile is chosen per model among ``PERCENTILES``, and the layout among ``LAYOUTS``
  (as exported, or with every quantised conv's channels equalised to one range:
  train/equalise.py): the pair whose int8 output is nearest the fp32 output on images held out
  of the calibration set (training images, never the evaluation sets). Too wide a range rounds
  coarsely, too narrow clips (RepSR x2 Set5: 0.12 dB lost at 99.999, 0.09 at 99.995); channels
  of unequal ranges round coarsely where narrow (ESPCN x2 Set5: 0.21 dB lost as exported, 0.08
  equalised). Scaling every calibrated range by 0.5-1.5 brought nothing (ESPCN x2: the
  calibrated ones were nearest fp32).

The int8 file goes beside the fp32 one (``<name>.int8.onnx``); the card gets ``onnx_int8`` and
``int8_psnr_loss_db``: the largest PSNR drop against the fp32 file over every dataset and LR
input measured. ``--precision auto`` uses int8 only when that loss is within the card's
``int8_tolerance_db``. Both ONNX Runtime and OpenVINO run the file.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from streamsr.durable import atomic_path
from streamsr.errors import ModelError
from streamsr.evaluate import evaluate_models, onnx_upscaler, prepare, read_image
from streamsr.lr_degrade import LRDegradation
from streamsr.metrics import image_to_y
from streamsr.resize import imresize
from streamsr.types import ModelCard
from streamsr.hashing import file_sha256
from train.cli import report_errors
from train.data import split_holdout
from train.equalise import Equalisation, equalisations, equalise_file

log = logging.getLogger(__name__)
DEFAULT_TOLERANCE_DB = 0.1
PERCENTILES = (99.99, 99.995, 99.999)  # calibration candidates; the held-out images pick one
LAYOUTS = ("plain", "equalised")  # the file as it is, or channel-equalised (train/equalise.py)
HELD_OUT = 10  # training images kept out of calibration to choose the percentile on
# A quantised conv whose output only feeds a Tanh gets the range [-TANH_RANGE, TANH_RANGE]: past
# it the Tanh saturates, so levels spent there are wasted. ESPCN x2 (125k steps), int8 against
# fp32 on the held-out images, the middle conv's output range set to +-1.5 / 2 / 2.5 / 3 / 4:
# 47.8 / 48.5 / 47.3 / 46.1 / 44.0 dB, against 41.5 calibrated (plain layout).
TANH_RANGE = 2.0
# The equalised layout adds a per-channel Mul and BatchNormalization around each quantised conv,
# which ONNX Runtime runs as extra passes: its int8 file ran at 0.89-0.91x the plain one's speed
# for ESPCN x2 and 0.81-0.88x for RepSR x3, OpenVINO at 0.97-1.08x (benchmarks/int8_layouts.py,
# BENCHMARKS.md; 352x288, 2 threads, AVX2 EPYC, two runs). So it is kept only when its int8 file
# is nearer fp32 than the nearest plain one by this much on the held-out images: ESPCN's are by
# about 5 dB (Set5 loss 0.13 -> 0.08 dB at x2), RepSR's by 0.04 to 1.7 dB after QAT, which moved
# their Set5/Set14 losses by -0.019 to +0.008 dB: not worth the time.
EQUALISED_MARGIN_DB = 2.0


def calibration_patches(files: list[Path], scale: int, count: int = 48, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """``count`` LR luma patches (1, 1, size, size) in [0, 1], from random images of ``files``."""
    rng = np.random.default_rng(seed)
    patches = []
    while len(patches) < count:
        img = read_image(files[int(rng.integers(len(files)))])
        lr = np.round(image_to_y(np.clip(np.round(imresize(img, 1.0 / scale)), 0, 255).astype(np.uint8))) / 255.0
        if min(lr.shape) < size:
            continue
        y, x = int(rng.integers(lr.shape[0] - size + 1)), int(rng.integers(lr.shape[1] - size + 1))
        patches.append(lr[None, None, y : y + size, x : x + size].astype(np.float32))
    return patches


def float_conv_indices(count: int) -> set[int]:
    """Which of a network's ``count`` convolutions stay float (see the module docstring)."""
    if count == 0:
        return set()
    return {0, count - 1} | ({count - 2} if count > 3 else set())


def _conv_names(onnx_path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv"]


def float_convs(onnx_path: Path) -> list[str]:
    """Names of the Conv nodes kept float."""
    convs = _conv_names(onnx_path)
    return sorted(convs[i] for i in float_conv_indices(len(convs)))


def quantised_convs(onnx_path: Path) -> list[str]:
    """Names of the Conv nodes the int8 file quantises, in graph order."""
    convs = _conv_names(onnx_path)
    return [c for i, c in enumerate(convs) if i not in float_conv_indices(len(convs))]


def tanh_limits(onnx_path: Path) -> dict[str, tuple[float, float]]:
    """(-TANH_RANGE, TANH_RANGE) for each quantised conv's output that only a Tanh reads."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    readers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.op_type)
    quantised = set(quantised_convs(onnx_path))
    return {n.output[0]: (-TANH_RANGE, TANH_RANGE) for n in graph.node
            if n.name in quantised and readers.get(n.output[0]) == ["Tanh"]}


def quantize_onnx(fp32: Path, int8: Path, patches: list[np.ndarray], keep_float: list[str] | None = None,
                  percentile: float = PERCENTILES[1], ranges: dict[str, tuple[float, int]] | None = None,
                  limits: dict[str, tuple[float, float]] | None = None) -> None:
    """Write the int8 file; ``ranges`` fixes (scale, zero point) of named activations instead of
    calibrating them, ``limits`` their (min, max)."""
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
            extra_options={"CalibPercentile": percentile, "TensorQuantOverrides": {
                **{name: [{"rmin": np.array(low, np.float32), "rmax": np.array(high, np.float32)}]
                   for name, (low, high) in (limits or {}).items()},
                **{name: [{"scale": np.array(scale, np.float32), "zero_point": np.array(zero_point, np.uint8)}]
                   for name, (scale, zero_point) in (ranges or {}).items()}}},
            nodes_to_exclude=keep_float or [],
            op_types_to_quantize=["Conv"],
        )
        os.replace(partial, int8)
    finally:
        partial.unlink(missing_ok=True)


def held_out_images(files: list[Path], scale: int) -> list[np.ndarray]:
    """LR luma planes in [0, 1] of ``files`` (MATLAB bicubic, as the evaluation protocol makes them)."""
    return [prepare(read_image(f), scale, f.name).lr_y for f in files]


def run_on(card: ModelCard, onnx_file: Path, planes: list[np.ndarray]) -> list[np.ndarray]:
    """``onnx_file`` (the card's model in another form) on LR luma planes, one thread."""
    upscale = onnx_upscaler(dataclasses.replace(card, onnx=str(onnx_file.resolve())), threads=1)
    return [upscale(lr) for lr in planes]


def mean_squared_error(outputs: list[np.ndarray], reference: list[np.ndarray]) -> float:
    return float(np.mean([np.mean((a - b) ** 2) for a, b in zip(outputs, reference)]))


@dataclasses.dataclass(frozen=True)
class Layout:
    """The fp32 file in one of ``LAYOUTS``: the file quantised, the bounds of its Tanh inputs, and
    (equalised) how each quantised conv was rewritten."""

    name: str
    source: Path
    limits: dict[str, tuple[float, float]]
    equalised: dict[str, Equalisation] | None = None


def layouts_of(fp32: Path, patches: list[np.ndarray], workdir: Path, names: tuple[str, ...] = LAYOUTS) -> list[Layout]:
    """``fp32`` in each named layout; the equalised file is written to ``workdir``."""
    limits = tanh_limits(fp32)
    layouts = [Layout("plain", fp32, limits)] if "plain" in names else []
    if "equalised" in names:
        convs = quantised_convs(fp32)
        equalised = equalisations(fp32, patches, convs, limits)
        source = workdir / "equalised.onnx"
        layouts.append(Layout("equalised", source, equalise_file(fp32, source, patches, convs, limits, equalised), equalised))
    return layouts


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One int8 file tried: its layout, calibration percentile, and squared error against fp32."""

    layout: Layout
    percentile: float
    int8: Path
    error: float


def calibrate(card: ModelCard, fp32: Path, patches: list[np.ndarray], held_out: list[np.ndarray],
              reference: list[np.ndarray], workdir: Path, layouts: tuple[str, ...] = LAYOUTS) -> list[Candidate]:
    """An int8 file for each of ``layouts`` and ``PERCENTILES`` in ``workdir``, each with its mean
    squared error against ``reference``, the fp32 file's output on the ``held_out`` LR planes."""
    candidates = []
    for layout in layouts_of(fp32, patches, workdir, layouts):
        for pct in PERCENTILES:
            int8 = workdir / f"{layout.name}.{pct}.int8.onnx"
            quantize_onnx(layout.source, int8, patches, float_convs(fp32), pct, limits=layout.limits)
            candidates.append(Candidate(layout, pct, int8, mean_squared_error(run_on(card, int8, held_out), reference)))
    log.info("PSNR of int8 against fp32 on held-out images: %s",
             {f"{c.layout.name} {c.percentile}": fidelity_db(c.error) for c in candidates})
    return candidates


def best_per_layout(candidates: list[Candidate]) -> dict[str, Candidate]:
    """Each layout's name -> its candidate nearest fp32, in the order the layouts were tried."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        if c.layout.name not in best or c.error < best[c.layout.name].error:
            best[c.layout.name] = c
    return best


def nearest(options: dict[Any, tuple[str, float]]) -> Any:
    """The key of ``options`` (layout name, squared error against fp32) nearest fp32, but a plain
    one unless an equalised one is nearer by ``EQUALISED_MARGIN_DB``."""
    best = min(options, key=lambda k: options[k][1])
    plain = [k for k in options if options[k][0] == "plain"]
    if options[best][0] != "plain" and plain:
        best_plain = min(plain, key=lambda k: options[k][1])
        if fidelity_db(options[best][1]) - fidelity_db(options[best_plain][1]) < EQUALISED_MARGIN_DB:
            return best_plain
    return best


def describe(best: Candidate, candidates: list[Candidate], held_out: int) -> str:
    """What the card says about how ``best`` was made."""
    tanh = f", Tanh inputs at +-{TANH_RANGE:g}" if best.layout.limits else ""
    tried = list(dict.fromkeys(c.layout.name for c in candidates))
    return (f"static QDQ, {best.layout.name} channels{tanh}, calibration percentile {best.percentile} (of {tried} x "
            f"{list(PERCENTILES)}: nearest fp32 on {held_out} held-out training images)")


def quantize_best(card: ModelCard, fp32: Path, int8: Path, patches: list[np.ndarray], held_out: list[np.ndarray],
                  layouts: tuple[str, ...] = LAYOUTS) -> str:
    """Quantise with each of ``layouts`` (the file as it is, or channel-equalised: train/equalise.py)
    and ``PERCENTILES``; keep the file whose output is nearest the fp32 file's on the ``held_out`` LR
    planes (mean squared error). Returns what it did, for the card."""
    if not held_out:
        quantize_onnx(fp32, int8, patches, float_convs(fp32), limits=tanh_limits(fp32))
        return f"static QDQ, calibration percentile {PERCENTILES[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        candidates = calibrate(card, fp32, patches, held_out, run_on(card, fp32, held_out), Path(tmp), layouts)
        best = candidates[nearest({i: (c.layout.name, c.error) for i, c in enumerate(candidates)})]
        with atomic_path(int8) as partial:
            shutil.copyfile(best.int8, partial)
    return describe(best, candidates, len(held_out))


def fidelity_db(mse: float) -> float:
    """A mean squared error on [0, 1] images as a PSNR."""
    return round(float(10 * np.log10(1 / max(mse, 1e-12))), 2)


def activation_ranges(int8: Path) -> dict[str, tuple[float, int]]:
    """(scale, zero point) of every activation the int8 file rounds, by the float tensor's name."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(int8)).graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return {
        n.input[0]: (float(constants[n.input[1]]), int(constants[n.input[2]]))
        for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in constants
    }


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


def calibration_split(dirs: list[Path]) -> tuple[list[Path], list[Path]]:
    """``(calibration, held_out)`` training images; no held-out ones from a handful of images."""
    files, _ = split_holdout(dirs, 0)
    return split_holdout(dirs, HELD_OUT if len(files) >= 5 * HELD_OUT else 0)


def quantize_card(
    card_path: Path, calib_dirs: list[Path], eval_dirs: list[Path], degradations: list[LRDegradation],
    tolerance: float = DEFAULT_TOLERANCE_DB, threads: int = 1,
) -> ModelCard:
    card = ModelCard.load(card_path)
    if card.colour != "y":
        raise ModelError(f"model {card.name}: only Y-channel models are quantised so far")
    int8_path = card.file(card.onnx).with_name(Path(card.onnx).stem + ".int8.onnx")
    fp32_path = card.file(card.onnx)
    calib_files, held_out = calibration_split(calib_dirs)
    method = quantize_best(card, fp32_path, int8_path, calibration_patches(calib_files, card.scale),
                           held_out_images(held_out, card.scale))
    card = ModelCard(**{**card.__dict__, "onnx_int8": int8_path.name, "onnx_int8_sha256": file_sha256(int8_path)})
    loss = int8_loss(card, eval_dirs, [LRDegradation()] + degradations, threads)
    log.info("%s int8: largest PSNR loss %.3f dB (%s)", card.name, loss["max"], loss["per_input"])
    card = ModelCard(**{**card.__dict__, "int8_psnr_loss_db": loss["max"], "int8_tolerance_db": tolerance,
                        "training": {**card.training, "int8": method}})
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
