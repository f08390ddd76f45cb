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
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from streamsr.errors import ConfigError, InputError
from streamsr.evaluate import EvalImage, evaluate_images, load_dataset, prepare_degraded, read_image
from streamsr.lr_degrade import LRDegradation
from streamsr.models import build_model
from train.config import TrainConfig, load_config, resolve_path
from train.data import PatchSampler, split_holdout
from train.sessions import record_start

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
    if not path.exists() and path.name == WEIGHTS_NAME and (path.parent / "config.yaml").exists():
        # a fresh checkout: the finished run's weights come back from its committed checkpoint
        finished_run(path.parent, load_config(path.parent / "config.yaml"))
    if not path.exists():
        raise ConfigError(f"init_from {path}: not found (a run writes its weights.pt when it finishes)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "model" in state:  # a checkpoint
        state = shipped_weights(state)
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


def shipped_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a checkpoint's run ships: its moving average where it keeps one, else its model."""
    if "ema" not in checkpoint:
        return checkpoint["model"]
    prefix = "module."  # AveragedModel keeps the averaged copy as .module
    return {k[len(prefix):]: v for k, v in checkpoint["ema"].items() if k.startswith(prefix)}


@dataclass
class RunState:
    """What a checkpoint holds: the model, its optimiser, the moving average of its weights (where
    the config asks for one), the step, the time spent and every RNG."""

    model: nn.Module
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    ema: AveragedModel | None = None
    step: int = 0
    elapsed: float = 0.0

    @property
    def shipped_model(self) -> nn.Module:
        return self.model if self.ema is None else self.ema.module

    def save(self, path: Path) -> None:
        ck = {
            "model": self.model.state_dict(),
            "optim": self.opt.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed,
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }
        if self.ema is not None:
            ck["ema"] = self.ema.state_dict()
        _atomic_save(ck, path)

    def load(self, path: Path, device: torch.device) -> None:
        if not path.exists():
            raise InputError(f"--resume: no checkpoint at {path}")
        ck = torch.load(path, map_location=device, weights_only=True)
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optim"])
        if self.ema is not None and "ema" in ck:  # otherwise the average starts here
            self.ema.load_state_dict(ck["ema"])
        self.step, self.elapsed = int(ck["step"]), float(ck["elapsed_s"])
        self.rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        log.info("resumed %s at step %d", path, self.step)


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint was saved at, or None where there is none."""
    if not path.exists():
        return None
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def finished_run(run_dir: Path, cfg: TrainConfig) -> bool:
    """Whether ``run_dir`` holds a run of ``cfg`` that has reached its last step; if so, make sure
    its final weights are there. ``weights.pt`` is not kept in git: on a fresh checkout it is
    rewritten from the committed checkpoint, whose model is the final one, without a new session."""
    weights = run_dir / WEIGHTS_NAME
    if weights.exists():
        return True
    step = checkpoint_step(run_dir / CKPT_NAME)
    if step is None or step < cfg.schedule.steps:
        return False
    ck = torch.load(run_dir / CKPT_NAME, map_location="cpu", weights_only=True)
    _atomic_save(shipped_weights(ck), weights)
    log.info("%s: final weights restored from its checkpoint (step %d)", run_dir, step)
    return True


def initial_state(cfg: TrainConfig, device: torch.device, resume_from: Path | None) -> RunState:
    """The model (fresh, from ``init_from``, or from a checkpoint) with its optimiser, seeded."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = make_model(cfg)
    if cfg.init_from and resume_from is None:
        init_model(model, resolve_path(cfg.init_from))
    # channels_last: oneDNN's faster convolution layout (a RepSR x2 step 1.16x faster on 2 AVX2
    # cores: benchmarks/train_step.py)
    model = model.to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    ema = None
    if cfg.ema_decay:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
    state = RunState(model, opt, rng, ema)
    if resume_from is not None:
        state.load(resume_from, device)
    return state


@dataclass(frozen=True)
class TrainData:
    sampler: PatchSampler
    val_images: list[EvalImage]
    samples_per_epoch: float


def load_data(cfg: TrainConfig) -> TrainData:
    """Training patches (clean or degraded) and the held-out validation images."""
    degradation = None
    if cfg.degradation == "cctv":
        from train.degrade import CCTVDegradation

        degradation = CCTVDegradation(cfg.cctv)
    train_files, held_out = split_holdout([resolve_path(d) for d in cfg.data.train_dirs], cfg.data.holdout)
    sampler = PatchSampler(train_files, cfg.scale, cfg.data.patch_size, degradation, workers=available_cores(),
                           edge_patches=cfg.data.edge_patches)
    val_degrade = LRDegradation.parse(cfg.data.val_lr_degrade)
    val_images = [im for f in held_out for im in prepare_degraded(read_image(f), cfg.scale, val_degrade, f.name)]
    if cfg.data.val_dir:
        val_images += load_dataset(resolve_path(cfg.data.val_dir), cfg.scale, val_degrade)
    if held_out:
        log.info("validating on %d held-out images: %s", len(held_out), ", ".join(f.name for f in held_out))
    samples_per_epoch = sum(p.lr.size for p in sampler.pairs) / cfg.data.patch_size**2
    return TrainData(sampler, val_images, samples_per_epoch)


class CurveLog:
    """The run's CSV log (the validation curve); a resume drops rows written after the checkpoint.

    Every row opens the file anew: a log replaced under a running run (a ``git pull`` or checkout
    of ``runs/``) then gets the next rows, where a handle kept open would write them into the
    replaced, deleted file.
    """

    def __init__(self, path: Path, resume: bool, step: int) -> None:
        self.path = path
        if resume and path.exists():
            _truncate_log(path, step)  # rows written after the checkpoint will be redone
        else:
            with open(path, "w", newline="") as f:
                csv.DictWriter(f, fieldnames=LOG_FIELDS).writeheader()

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_FIELDS).writerow(row)


def patch_loss(pred: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, border: int, kind: str) -> torch.Tensor:
    """L1 or squared error: weighted by ``weight`` (edge patches, train/data.py), else over the
    patches less ``border`` HR pixels on every side."""
    if weight is not None:
        error = (pred - y).abs() if kind == "l1" else (pred - y) ** 2
        return (error * weight).sum() / weight.sum()
    loss_fn = nn.L1Loss() if kind == "l1" else nn.MSELoss()
    return loss_fn(border_crop(pred, border), border_crop(y, border))


def train_step(state: RunState, cfg: TrainConfig, data: TrainData, device: torch.device, precision: str) -> float:
    """One Adam update on a batch of patches; returns the loss."""
    for g in state.opt.param_groups:
        g["lr"] = lr_at(cfg, state.step)
    lr_np, hr_np, weight_np = data.sampler.sample_for_loss(cfg.data.batch_size, state.rng, cfg.data.loss_border)
    x = torch.from_numpy(lr_np).to(device, memory_format=torch.channels_last)
    y = torch.from_numpy(hr_np).to(device, memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        pred = state.model(x)
    weight = None if weight_np is None else torch.from_numpy(weight_np).to(device, memory_format=torch.channels_last)
    loss = patch_loss(pred.float(), y, weight, cfg.data.loss_border * cfg.scale, cfg.loss)
    state.opt.zero_grad(set_to_none=True)
    loss.backward()
    state.opt.step()
    if state.ema is not None:
        state.ema.update_parameters(state.model)
    state.step += 1
    return float(loss.item())


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    threads: int | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    time_limit_s: float | None = None,
) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (checkpoint, weights, CSV log).

    ``resume`` continues from ``out_dir/checkpoint.pt``; ``stop_after`` stops after that
    many total steps (to split a run; the schedule still follows ``cfg.schedule.steps``);
    ``time_limit_s`` stops, with a checkpoint, at the first step after that many seconds (a
    lease that ends at a fixed time).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device, n_threads, precision = _compute(cfg, threads)
    state = initial_state(cfg, device, out / CKPT_NAME if resume else None)
    record_start(out, state.step, str(device), n_threads, precision)
    data = load_data(cfg)
    curve = CurveLog(out / LOG_NAME, resume, state.step)
    end = cfg.schedule.steps if stop_after is None else min(stop_after, cfg.schedule.steps)
    result = TrainResult(step=state.step, device=str(device), threads=n_threads, precision=precision)
    bar = _progress_bar(cfg, state.step) if progress else None
    window: list[float] = []
    t0 = time.perf_counter()
    deadline = None if time_limit_s is None else t0 + time_limit_s
    state.model.train()
    try:
        while state.step < end:
            lr_now = lr_at(cfg, state.step)
            window.append(train_step(state, cfg, data, device, precision))
            result.losses.append(window[-1])
            if bar is not None:
                bar.update(1)
            last = state.step == end or (deadline is not None and time.perf_counter() >= deadline)
            # validate at the last step of every stretch too, so the log ends on where the run stopped
            do_val = bool(data.val_images) and (state.step % cfg.val_every == 0 or last)
            if state.step % cfg.log_every == 0 or do_val or last:
                row = _log_row(state, cfg, data, lr_now, window, state.elapsed + time.perf_counter() - t0)
                window = []
                if do_val:
                    result.val_psnr = _validate_into(row, state, data, cfg, device, bar)
                curve.write(row)
            if state.step % cfg.ckpt_every == 0 or last:
                state.elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                state.save(out / CKPT_NAME)
            if last:
                break
    finally:
        if bar is not None:
            bar.close()
    state.elapsed += time.perf_counter() - t0
    if state.step >= cfg.schedule.steps:
        _atomic_save(state.shipped_model.state_dict(), out / WEIGHTS_NAME)
    result.step, result.elapsed_s = state.step, state.elapsed
    return result


def _compute(cfg: TrainConfig, threads: int | None) -> tuple[torch.device, int, str]:
    """The device, torch's thread count (set here) and the precision this run trains with."""
    n_threads = threads or cfg.threads or available_cores()
    torch.set_num_threads(n_threads)
    device = pick_device(cfg.device)
    precision = pick_precision(cfg.precision, device)
    log.info("device %s, %d threads, precision %s", device, n_threads, precision)
    return device, n_threads, precision


def _progress_bar(cfg: TrainConfig, step: int):  # -> tqdm
    from tqdm import tqdm

    return tqdm(total=cfg.schedule.steps, initial=step, desc=cfg.run_name, dynamic_ncols=True)


def _log_row(
    state: RunState, cfg: TrainConfig, data: TrainData, lr_now: float, window: list[float], elapsed: float
) -> dict[str, Any]:
    return {
        "step": state.step,
        "epoch": f"{state.step * cfg.data.batch_size / data.samples_per_epoch:.3f}",
        "lr": f"{lr_now:.3e}",
        "loss": f"{np.mean(window):.6f}",
        "elapsed_s": f"{elapsed:.1f}",
    }


def _validate_into(row: dict[str, Any], state: RunState, data: TrainData, cfg: TrainConfig,
                   device: torch.device, bar) -> float:
    vp, vs = validate(state.shipped_model, data.val_images, cfg.scale, device)
    row.update(val_psnr=f"{vp:.4f}", val_ssim=f"{vs:.5f}")
    if bar is not None:
        bar.set_postfix(loss=row["loss"], val_psnr=row["val_psnr"])
    log.info("step %d loss %s val PSNR %.3f", state.step, row["loss"], vp)
    return vp
