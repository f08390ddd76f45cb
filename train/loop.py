"""The training loop: patches -> model -> loss -> Adam, with validation, CSV log and
checkpoints that resume exactly (model, optimiser, schedule, step and every RNG state)."""
from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from streamsr.errors import ConfigError, InputError
from streamsr.evaluate import EvalImage, evaluate_images, load_dataset, prepare_degraded, read_image
from streamsr.lr_degrade import LRDegradation
from streamsr.models import build_model
from train.config import TrainConfig, resolve_path
from train.data import PatchSampler, split_holdout

log = logging.getLogger(__name__)

CKPT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "weights.pt"
LOG_NAME = "log.csv"
LOG_FIELDS = ["step", "epoch", "lr", "loss", "val_psnr", "val_ssim", "elapsed_s"]


@dataclass
class TrainResult:
    step: int
    losses: list[float] = field(default_factory=list)  # per step, for the steps run in this call
    val_psnr: float | None = None
    elapsed_s: float = 0.0
    device: str = "cpu"
    threads: int = 1
    precision: str = "fp32"


def pick_device(kind: str) -> torch.device:
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device: cuda was asked but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 arithmetic is native here (emulated bf16 on a CPU is 12-16x slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # oneDNN's own check: AVX512-BF16 or AMX
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(kind: str, device: torch.device) -> str:
    if kind == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if kind == "bf16" and not native_bf16(device):
        log.warning("precision bf16: this %s has no native bf16, so it is emulated (much slower than fp32)", device.type)
    return kind


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for the update that makes ``step`` (0-based) into ``step + 1``."""
    sch, base = cfg.schedule, cfg.optim.lr
    if sch.kind == "constant":
        return base
    if sch.kind == "multistep":
        return base * sch.gamma ** sum(step >= m for m in sch.milestones)
    t = min(step / sch.steps, 1.0)
    return sch.min_lr + 0.5 * (base - sch.min_lr) * (1.0 + math.cos(math.pi * t))


def make_model(cfg: TrainConfig) -> nn.Module:
    return build_model(cfg.model.name, cfg.scale, **cfg.model.kwargs)


def init_model(model: nn.Module, path: Path) -> None:
    """Copy every tensor of ``path`` (weights or a checkpoint) whose name and shape match ``model``.

    x3 and x4 models start from the x2 model's body this way; the upsampling layer, whose
    shape depends on the scale, keeps its fresh initialisation.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ConfigError(f"init_from {path}: no tensor matches the model")
    model.load_state_dict(matched, strict=False)
    log.info("initialised %d of %d tensors from %s", len(matched), len(own), path)


def border_crop(t: torch.Tensor, border: int) -> torch.Tensor:
    return t[..., border:-border, border:-border] if border else t


def validate(model: nn.Module, images: list[EvalImage], scale: int, device: torch.device) -> tuple[float, float]:
    model.eval()

    def upscale(lr_y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(lr_y)[None, None].to(device)
            return model(x)[0, 0].float().cpu().numpy()

    r = evaluate_images(images, scale, upscale)
    model.train()
    return r["psnr"], r["ssim"]


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _truncate_log(path: Path, step: int) -> None:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    threads: int | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (checkpoint, weights, CSV log).

    ``resume`` continues from ``out_dir/checkpoint.pt``; ``stop_after`` stops after that
    many total steps (to split a run; the schedule still follows ``cfg.schedule.steps``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_threads = threads or cfg.threads or available_cores()
    torch.set_num_threads(n_threads)
    device = pick_device(cfg.device)
    precision = pick_precision(cfg.precision, device)
    log.info("device %s, %d threads, precision %s", device, n_threads, precision)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = make_model(cfg)
    if cfg.init_from and not resume:
        init_model(model, resolve_path(cfg.init_from))
    model = model.to(device)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    step, elapsed = 0, 0.0
    ckpt_path = out / CKPT_NAME
    if resume:
        if not ckpt_path.exists():
            raise InputError(f"--resume: no checkpoint at {ckpt_path}")
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        step, elapsed = int(ck["step"]), float(ck["elapsed_s"])
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        log.info("resumed %s at step %d", ckpt_path, step)

    degradation = None
    if cfg.degradation == "cctv":
        from train.degrade import CCTVDegradation

        degradation = CCTVDegradation(cfg.cctv)
    train_files, held_out = split_holdout([resolve_path(d) for d in cfg.data.train_dirs], cfg.data.holdout)
    sampler = PatchSampler(train_files, cfg.scale, cfg.data.patch_size, degradation)
    val_degrade = LRDegradation.parse(cfg.data.val_lr_degrade)
    val_images = [im for f in held_out for im in prepare_degraded(read_image(f), cfg.scale, val_degrade, f.name)]
    if cfg.data.val_dir:
        val_images += load_dataset(resolve_path(cfg.data.val_dir), cfg.scale, val_degrade)
    if held_out:
        log.info("validating on %d held-out images: %s", len(held_out), ", ".join(f.name for f in held_out))
    border = cfg.data.loss_border
    samples_per_epoch = sum(p.lr.size for p in sampler.pairs) / cfg.data.patch_size**2
    loss_fn = nn.L1Loss() if cfg.loss == "l1" else nn.MSELoss()

    log_path = out / LOG_NAME
    new_log = not (resume and log_path.exists())
    if not resume and log_path.exists():
        log_path.unlink()
    elif not new_log:
        _truncate_log(log_path, step)  # rows written after the checkpoint will be redone
    log_file = open(log_path, "a", newline="")
    writer = csv.DictWriter(log_file, fieldnames=LOG_FIELDS)
    if new_log:
        writer.writeheader()

    def checkpoint() -> None:
        state = {
            "model": model.state_dict(),
            "optim": opt.state_dict(),
            "step": step,
            "elapsed_s": elapsed,
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }
        _atomic_save(state, ckpt_path)

    end = cfg.schedule.steps if stop_after is None else min(stop_after, cfg.schedule.steps)
    result = TrainResult(step=step, device=str(device), threads=n_threads, precision=precision)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.schedule.steps, initial=step, desc=cfg.run_name, dynamic_ncols=True)
    window: list[float] = []
    t0 = time.perf_counter()
    model.train()
    try:
        while step < end:
            lr_now = lr_at(cfg, step)
            for g in opt.param_groups:
                g["lr"] = lr_now
            lr_np, hr_np = sampler.sample(cfg.data.batch_size, rng)
            x = torch.from_numpy(lr_np).to(device)
            y = torch.from_numpy(hr_np).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                pred = model(x)
            loss = loss_fn(border_crop(pred.float(), border * cfg.scale), border_crop(y, border * cfg.scale))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            value = float(loss.item())
            result.losses.append(value)
            window.append(value)
            if bar is not None:
                bar.update(1)
            last = step == end
            do_val = bool(val_images) and (step % cfg.val_every == 0 or step == cfg.schedule.steps)
            if step % cfg.log_every == 0 or do_val or last:
                row: dict[str, Any] = {
                    "step": step,
                    "epoch": f"{step * cfg.data.batch_size / samples_per_epoch:.3f}",
                    "lr": f"{lr_now:.3e}",
                    "loss": f"{np.mean(window):.6f}",
                    "elapsed_s": f"{elapsed + time.perf_counter() - t0:.1f}",
                }
                window = []
                if do_val:
                    vp, vs = validate(model, val_images, cfg.scale, device)
                    row.update(val_psnr=f"{vp:.4f}", val_ssim=f"{vs:.5f}")
                    result.val_psnr = vp
                    if bar is not None:
                        bar.set_postfix(loss=row["loss"], val_psnr=row["val_psnr"])
                    log.info("step %d loss %s val PSNR %.3f", step, row["loss"], vp)
                writer.writerow(row)
                log_file.flush()
            if step % cfg.ckpt_every == 0 or last:
                elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint()
    finally:
        log_file.close()
        if bar is not None:
            bar.close()
    elapsed += time.perf_counter() - t0
    if step >= cfg.schedule.steps:
        _atomic_save(model.state_dict(), out / WEIGHTS_NAME)
    result.step, result.elapsed_s = step, elapsed
    return result
