"""Quantisation-aware fine-tuning: a shipped model's weights made robust to the int8 file's rounding.

    python -m train.qat engines/espcn_x2.json --calib ../shared/data/train/T91 --calib ../shared/data/train/BSDS200 \\
        --steps 3000 --eval ../shared/data/eval/Set5 --eval ../shared/data/eval/Set14 --lr-degrade jpeg:40 --lr-degrade h264:28

Post-training quantisation (train/quantize.py) rounds weights and activations that were never
trained to be rounded. Here a copy of the deployed network is fine-tuned from the card's weights
with the same rounding simulated where the int8 file will have it (torch's FakeQuantize,
straight-through gradients): 7-bit per-channel symmetric weights and uint8 per-tensor
activations in and out of every convolution that the int8 file quantises (all but those
``train.quantize.float_conv_indices`` keeps float). It learns from the card's own fp32 model (distillation, L1 on the output), on
training patches of the input the card was trained on: bicubic LR, or the CCTV degradation of
the card's training config. So the int8 file keeps the model's job and only learns to survive
the rounding; a fine-tune towards the HR patches on bicubic LR would retrain a CCTV model into
another one (repsr_cctv_x2: clean +2.0 dB, JPEG 40 -0.5 dB after 1,500 steps). The fine-tuned
weights are then exported and quantised, calibrated on the same kind of patches; the fp32 and
fp16 files keep the original weights.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.utils.parametrize as parametrize
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver

from streamsr.errors import ConfigError
from streamsr.hashing import file_sha256
from streamsr.lr_degrade import LRDegradation
from streamsr.types import ModelCard
from train.cli import report_errors
from train.config import TrainConfig, load_config, resolve_path
from train.data import PatchSampler
from train.export import export_onnx
from train.measure import load_card_model
from train.quantize import (DEFAULT_TOLERANCE_DB, calibration_split, float_conv_indices, held_out_images, int8_loss,
                            quantize_best)

log = logging.getLogger(__name__)


class _FakeQuantWeight(nn.Module):
    """Weight parametrisation: the 7-bit per-output-channel rounding of train/quantize.py."""

    def __init__(self) -> None:
        super().__init__()
        self.fq = FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-64, quant_max=63,
                               dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.fq(w)


def _activation_fq() -> FakeQuantize:
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                        dtype=torch.quint8, qscheme=torch.per_tensor_affine)


def simulate_int8(model: nn.Module) -> list[nn.Conv2d]:
    """Fake-quantise the convs that the int8 file quantises, in place; returns those convs."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    keep_float = float_conv_indices(len(convs))
    inner = [conv for i, conv in enumerate(convs) if i not in keep_float]
    for conv in inner:
        parametrize.register_parametrization(conv, "weight", _FakeQuantWeight())
        fq_in, fq_out = _activation_fq(), _activation_fq()
        conv.add_module("fq_in", fq_in)
        conv.add_module("fq_out", fq_out)
        conv.register_forward_pre_hook(lambda mod, args: (mod.fq_in(args[0]),))
        conv.register_forward_hook(lambda mod, args, out: mod.fq_out(out))
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


def fine_tune(card: ModelCard, sampler: PatchSampler, steps: int, lr: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Distil the card's fp32 model into a copy that runs with the int8 rounding simulated."""
    teacher = load_card_model(card).eval()
    student = load_card_model(card).train()
    simulate_int8(student)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam([p for n, p in student.named_parameters() if "fq" not in n], lr=lr)
    border = 4 * card.scale  # the padded edge, where the int8 and fp32 outputs may differ for other reasons
    losses = []
    for step in range(steps):
        lr_patches = torch.from_numpy(sampler.sample(16, rng)[0])
        with torch.no_grad():
            target = teacher(lr_patches)
        pred = student(lr_patches)
        loss = nn.functional.l1_loss(pred[..., border:-border, border:-border], target[..., border:-border, border:-border])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 500 == 0:
            log.info("QAT step %d: L1 to the fp32 model %.6f", step + 1, float(np.mean(losses[-500:])))
    return plain_state(student.eval())


def qat_card(card_path: Path, calib_dirs: list[Path], eval_dirs: list[Path], degradations: list[LRDegradation],
             steps: int, lr: float, tolerance: float, threads: int) -> ModelCard:
    """Fine-tune, then quantise the fine-tuned weights into the card's int8 file (fp32 files untouched)."""
    card = ModelCard.load(card_path)
    calib_files, held_out = calibration_split(calib_dirs)
    sampler = training_sampler(card, calib_files)
    model = load_card_model(card)
    model.load_state_dict(fine_tune(card, sampler, steps, lr))
    calib = [p[None] for p in sampler.sample(48, np.random.default_rng(1))[0]]
    int8_path = card.file(card.onnx).with_name(Path(card.onnx).stem + ".int8.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        tuned = Path(tmp) / "tuned.onnx"  # the fine-tuned weights; only their int8 file is kept
        export_onnx(model.eval(), card.channels, tuned)
        method = quantize_best(card, tuned, int8_path, calib, held_out_images(held_out, card.scale))
    card = ModelCard(**{**card.__dict__, "onnx_int8": int8_path.name, "onnx_int8_sha256": file_sha256(int8_path)})
    loss = int8_loss(card, eval_dirs, [LRDegradation()] + degradations, threads)  # against the shipped fp32 file
    card = ModelCard(**{**card.__dict__, "int8_psnr_loss_db": loss["max"], "int8_tolerance_db": tolerance,
                        "training": {**card.training,
                                     "int8": f"QAT {steps} steps distilled from fp32, lr {lr:g}, then {method}"}})
    card.save(card_path)
    log.info("%s int8 after QAT: largest loss %.3f dB (%s)", card.name, loss["max"], loss["per_input"])
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.qat", description=__doc__.split("\n\n")[0])
    p.add_argument("cards", nargs="+", type=Path)
    p.add_argument("--calib", action="append", required=True, type=Path, metavar="DIR", help="training images")
    p.add_argument("--eval", action="append", required=True, type=Path, metavar="DIR", help="measure the loss here")
    p.add_argument("--lr-degrade", action="append", default=[], metavar="SPEC")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=2e-5)
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
