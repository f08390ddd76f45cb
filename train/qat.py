"""Quantisation-aware fine-tuning: a shipped model's weights made robust to the int8 file's rounding.

    python -m train.qat engines/espcn_x2.json --calib ../shared/data/train/T91 --calib ../shared/data/train/BSDS200 \\
        --eval ../shared/data/eval/Set5 --eval ../shared/data/eval/Set14 --lr-degrade jpeg:40 --lr-degrade h264:28

Post-training quantisation (train/quantize.py) rounds weights and activations that were never
trained to be rounded. Here a copy of the deployed network is fine-tuned from the card's weights
with the same rounding simulated where the int8 file will have it (torch's FakeQuantize,
straight-through gradients): 7-bit per-channel symmetric weights and uint8 per-tensor
activations in and out of every convolution that the int8 file quantises (all but those
``train.quantize.float_conv_indices`` keeps float). It learns from the card's own fp32 model (distillation, squared error to its output), on
training patches of the input the card was trained on: bicubic LR, or the CCTV degradation of
the card's training config. So the int8 file keeps the model's job and only learns to survive
the rounding; a fine-tune towards the HR patches on bicubic LR would retrain a CCTV model into
another one (repsr_cctv_x2: clean +2.0 dB, JPEG 40 -0.5 dB after 1,500 steps). The fine-tuned
weights are then exported and quantised at the same ranges; the fp32 and fp16 files keep the
original weights. QAT runs once per layout of train/quantize.py (as exported, and with the
channels equalised by train/equalise.py), starting from that layout's best post-training file
and simulating its rounding where and how that file rounds; of those files and the
post-training ones, the nearest fp32 on the held-out training images is kept (an equalised
one only when nearer by ``train.quantize.EQUALISED_MARGIN_DB``: it runs slower). ESPCN x2 (125k
steps), int8 against fp32 on those images: post-training 52.5 dB (equalised), QAT in the
exported layout 48.9, QAT in the equalised layout 54.2 (a scratch run of 500 steps at 1e-5).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.utils.parametrize as parametrize
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

from streamsr.durable import atomic_path
from streamsr.errors import ConfigError
from streamsr.hashing import file_sha256
from streamsr.lr_degrade import LRDegradation
from streamsr.types import ModelCard
from train.cli import report_errors
from train.config import TrainConfig, load_config, resolve_path
from train.data import PatchSampler
from train.equalise import Equalisation, equalise_file
from train.export import export_onnx
from train.measure import load_card_model
from train.quantize import (DEFAULT_TOLERANCE_DB, HELD_OUT, Candidate, activation_ranges, best_per_layout, calibrate,
                            calibration_split, describe, fidelity_db, float_conv_indices, float_convs, held_out_images,
                            int8_loss, mean_squared_error, nearest, quantised_convs, quantize_onnx, run_on)

Range = tuple[float, int]  # an activation's (scale, zero point) in the int8 file

log = logging.getLogger(__name__)


class _FakeQuantWeight(nn.Module):
    """Weight parametrisation: the 7-bit per-output-channel rounding of train/quantize.py, applied
    to the weights as the int8 file holds them (equalised: w * g_in / g_out), at the scale ORT
    derives from those (symmetric, absmax / 64, range -64..64)."""

    def __init__(self, conv: nn.Conv2d, eq: Equalisation | None) -> None:
        super().__init__()
        gain = (np.ones(tuple(conv.weight.shape[:2])) if eq is None
                else eq.inputs[None, :] / eq.outputs[:, None])
        self.register_buffer("gain", torch.as_tensor(gain, dtype=torch.float32)[..., None, None])

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        stored = w * self.gain
        scale = stored.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 64
        zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
        return torch.fake_quantize_per_channel_affine(stored, scale, zero, 0, -64, 64) / self.gain


def _activation_fq() -> FakeQuantize:
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                        dtype=torch.quint8, qscheme=torch.per_tensor_affine)


def _fixed(fq: FakeQuantize, scale: float, zero_point: int) -> FakeQuantize:
    fq.disable_observer()
    fq.scale.copy_(torch.tensor([scale]))
    fq.zero_point.copy_(torch.tensor([zero_point]))
    return fq


def _channels(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(1, -1, 1, 1)


def _round_input(conv: nn.Module, args: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    x, eq = args[0], conv.equalisation
    if eq is None:
        return (conv.fq_in(x),)
    gain = _channels(eq.inputs, x)
    return (conv.fq_in(x / gain) * gain,)


def _round_output(conv: nn.Module, args: tuple[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    eq = conv.equalisation
    if eq is None:
        return conv.fq_out(out)
    gain, centre = _channels(eq.outputs, out), _channels(eq.centres, out)
    return conv.fq_out((out - centre) / gain) * gain + centre


def simulate_int8(model: nn.Module, ranges: list[tuple[Range, Range]] | None = None,
                  equalised: list[Equalisation] | None = None) -> list[nn.Conv2d]:
    """Fake-quantise the convs that the int8 file quantises, in place; returns those convs.

    ``ranges``: for each of those convs, the (input, output) activation ranges of an int8 file,
    fixed during training; without them the ranges follow the activations' min and max.
    ``equalised``: for each, the channel equalisation (train/equalise.py) of the file those
    ranges belong to: the rounding then happens where that file rounds, on the values it holds,
    while the weights trained stay those of the exported layout.
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    keep_float = float_conv_indices(len(convs))
    inner = [conv for i, conv in enumerate(convs) if i not in keep_float]
    for given, what in ((ranges, "activation ranges"), (equalised, "equalisations")):
        if given is not None and len(given) != len(inner):
            raise ValueError(f"{len(given)} {what} for {len(inner)} quantised convs")
    for k, conv in enumerate(inner):
        conv.equalisation = equalised[k] if equalised is not None else None
        parametrize.register_parametrization(conv, "weight", _FakeQuantWeight(conv, conv.equalisation))
        fq_in, fq_out = _activation_fq(), _activation_fq()
        if ranges is not None:
            fq_in, fq_out = _fixed(fq_in, *ranges[k][0]), _fixed(fq_out, *ranges[k][1])
        conv.add_module("fq_in", fq_in)
        conv.add_module("fq_out", fq_out)
        conv.register_forward_pre_hook(_round_input)
        conv.register_forward_hook(_round_output)
    return inner


def plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The fine-tuned float weights, without the simulation (parametrisations removed)."""
    for conv in [m for m in model.modules() if isinstance(m, nn.Conv2d) and parametrize.is_parametrized(m)]:
        parametrize.remove_parametrizations(conv, "weight", leave_parametrized=False)
    return {k: v for k, v in model.state_dict().items() if ".fq_" not in k}


def training_config(card: ModelCard) -> TrainConfig:
    """The config the card was trained with, refused if it has changed since."""
    name = card.training.get("config")
    if not name:
        raise ConfigError(f"{card.name}: the card names no training config, so the input it was trained on is unknown")
    path = resolve_path(name)
    cfg = load_config(path)
    want = card.training.get("config_sha256")
    if want and file_sha256(path) != want:
        raise ConfigError(f"{path} has changed since {card.name} was trained (sha256 differs from the card's); "
                          f"QAT needs the degradation the model was trained on")
    return cfg


def training_sampler(card: ModelCard, files: list[Path], patch: int = 48) -> PatchSampler:
    """LR patches of the kind the card was trained on: bicubic, or its config's CCTV degradation."""
    trained_on = card.training.get("degradation", "bicubic")
    degradation = None
    if trained_on == "cctv":
        from train.degrade import CCTVDegradation

        degradation = CCTVDegradation(training_config(card).cctv)
    elif trained_on != "bicubic":
        raise ConfigError(f"{card.name}: trained on the {trained_on!r} degradation, which QAT cannot reproduce")
    return PatchSampler(files, card.scale, patch, degradation)


def fine_tune(card: ModelCard, sampler: PatchSampler, steps: int, lr: float,
              ranges: list[tuple[Range, Range]] | None = None, equalised: list[Equalisation] | None = None,
              seed: int = 0) -> dict[str, torch.Tensor]:
    """Distil the card's fp32 model into a copy that runs with the int8 rounding simulated."""
    teacher = load_card_model(card).eval()
    student = load_card_model(card).train()
    simulate_int8(student, ranges, equalised)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam([p for n, p in student.named_parameters() if "fq" not in n], lr=lr)
    # Decayed to zero: at a constant rate the weights keep hopping between rounding steps and the
    # int8 file drifts away from fp32 again (ESPCN x2: nearest at a few hundred steps, then worse).
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for step in range(steps):
        lr_patches = torch.from_numpy(sampler.sample(16, rng)[0])
        with torch.no_grad():
            target = teacher(lr_patches)
        pred = student(lr_patches)
        # The whole patch: the teacher sees the same zero-padded edges, so these are the pixels fp32
        # makes at an image's border, which the int8 file must match too.
        loss = nn.functional.mse_loss(pred, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 500 == 0:
            log.info("QAT step %d: mean squared error to the fp32 model %.3g", step + 1, float(np.mean(losses[-500:])))
    return plain_state(student.eval())


def conv_io(onnx_path: Path) -> list[tuple[str, str]]:
    """(input, output) tensor names of every Conv node, in graph order."""
    import onnx

    return [(n.input[0], n.output[0]) for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv"]


def quantised_conv_ranges(fp32: Path, int8: Path) -> list[tuple[Range, Range]]:
    """For each conv that ``int8`` quantises, the (input, output) ranges it rounds them to."""
    io, ranges = conv_io(fp32), activation_ranges(int8)
    keep_float = float_conv_indices(len(io))
    return [(ranges[i], ranges[o]) for k, (i, o) in enumerate(io) if k not in keep_float]


def ranges_by_name(onnx_path: Path, ranges: list[tuple[Range, Range]]) -> dict[str, Range]:
    """``ranges`` (per quantised conv) keyed by the names of those convs' tensors in ``onnx_path``."""
    io = conv_io(onnx_path)
    keep_float = float_conv_indices(len(io))
    quantised = [pair for k, pair in enumerate(io) if k not in keep_float]
    return {name: r for names, rs in zip(quantised, ranges) for name, r in zip(names, rs)}


def fine_tuned_file(card: ModelCard, sampler: PatchSampler, start: Candidate, calib: list[np.ndarray], steps: int,
                    lr: float, workdir: Path) -> Path:
    """Fine-tune the card's weights to the rounding of the post-training file ``start``, in its
    layout and at its activation ranges; quantise the fine-tuned weights the same way."""
    layout = start.layout
    ranges = quantised_conv_ranges(layout.source, start.int8)
    convs = quantised_convs(card.file(card.onnx))
    equalised = [layout.equalised[c] for c in convs] if layout.equalised else None
    model = load_card_model(card)
    model.load_state_dict(fine_tune(card, sampler, steps, lr, ranges, equalised))
    tuned = workdir / f"{layout.name}.tuned.onnx"  # the fine-tuned weights; only their int8 file is kept
    export_onnx(model.eval(), card.channels, tuned)
    if equalised:  # the same rewrite as the post-training file's, so that its ranges still fit
        equalise_file(tuned, tuned, calib, quantised_convs(tuned), given=dict(zip(quantised_convs(tuned), equalised)))
    qat = workdir / f"{layout.name}.qat.int8.onnx"
    quantize_onnx(tuned, qat, calib, float_convs(tuned), ranges=ranges_by_name(tuned, ranges))
    return qat


def qat_card(card_path: Path, calib_dirs: list[Path], eval_dirs: list[Path], degradations: list[LRDegradation],
             steps: int, lr: float, tolerance: float, threads: int) -> ModelCard:
    """Quantise as train.quantize does; in each layout, fine-tune the weights to the activation
    ranges of that layout's best post-training file and quantise them at those ranges; keep
    whichever int8 file, post-training or QAT, is nearest fp32 on the held-out training images
    (fp32 files untouched)."""
    card = ModelCard.load(card_path)
    calib_files, held_out = calibration_split(calib_dirs)
    sampler = training_sampler(card, calib_files)
    if not held_out:
        raise ConfigError(f"QAT needs at least {5 * HELD_OUT} training images ({HELD_OUT} are held out to check it); "
                          f"with fewer, quantise without it: python -m train.quantize {card_path}")
    calib = [p[None] for p in sampler.sample(48, np.random.default_rng(1))[0]]
    planes = held_out_images(held_out, card.scale)
    fp32 = card.file(card.onnx)
    int8_path = fp32.with_name(Path(card.onnx).stem + ".int8.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        reference = run_on(card, fp32, planes)
        candidates = calibrate(card, fp32, calib, planes, reference, Path(tmp))
        starts = best_per_layout(candidates)
        options: dict[str, tuple[str, float, Path, str]] = {}  # what -> (layout, error, int8 file, method)
        for layout, start in starts.items():
            options[f"post-training ({layout})"] = (layout, start.error, start.int8, describe(start, candidates, len(planes)))
            qat = fine_tuned_file(card, sampler, start, calib, steps, lr, Path(tmp))
            options[f"QAT ({layout})"] = (layout, mean_squared_error(run_on(card, qat, planes), reference), qat,
                                          f"QAT {steps} steps distilled from fp32 in the {layout} layout at the ranges "
                                          f"of {describe(start, candidates, len(planes))}, lr {lr:g}")
        chosen = nearest({k: v[:2] for k, v in options.items()})
        with atomic_path(int8_path) as partial:
            shutil.copyfile(options[chosen][2], partial)
    log.info("PSNR against fp32 on held-out images: %s; kept %s",
             {k: fidelity_db(v[1]) for k, v in options.items()}, chosen)
    method = options[chosen][3]
    if chosen.startswith("post-training"):
        method += f"; QAT ({steps} steps, {' and '.join(starts)} layouts) came out further from fp32"
    card = ModelCard(**{**card.__dict__, "onnx_int8": int8_path.name, "onnx_int8_sha256": file_sha256(int8_path)})
    loss = int8_loss(card, eval_dirs, [LRDegradation()] + degradations, threads)  # against the shipped fp32 file
    card = ModelCard(**{**card.__dict__, "int8_psnr_loss_db": loss["max"], "int8_tolerance_db": tolerance,
                        "training": {**card.training, "int8": method}})
    card.save(card_path)
    log.info("%s int8: largest loss %.3f dB (%s)", card.name, loss["max"], loss["per_input"])
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.qat", description=__doc__.split("\n\n")[0])
    p.add_argument("cards", nargs="+", type=Path)
    p.add_argument("--calib", action="append", required=True, type=Path, metavar="DIR", help="training images")
    p.add_argument("--eval", action="append", required=True, type=Path, metavar="DIR", help="measure the loss here")
    p.add_argument("--lr-degrade", action="append", default=[], metavar="SPEC")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_DB)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)

    def run() -> int:
        degradations = [LRDegradation.parse(d) for d in args.lr_degrade]
        for path in args.cards:
            card = qat_card(path, args.calib, args.eval, degradations, args.steps, args.lr, args.tolerance, args.threads)
            print(f"{path}: {card.onnx_int8}, largest PSNR loss {card.int8_psnr_loss_db:.3f} dB")
        return 0

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())
