"""Export a trained run to ``engines/``: ONNX, state_dict and the JSON model card.

    python -m train.export --config configs/train/espcn_x2.yaml [--run runs/espcn_x2]
        [--engines engines] [--eval ../shared/data/eval/Set5 --eval ../shared/data/eval/Set14]

The ONNX graph has input ``lr`` and output ``sr`` (NCHW float32), dynamic batch, height and
width, opset 17. onnxruntime is checked against torch (max abs difference < 1e-4) before
anything is written. ``--eval`` folders are measured with :mod:`streamsr.evaluate` on the
ONNX file just written, and the numbers go into the card.

A model with ``reparameterize()`` (RepSR) is collapsed first: the ONNX file, the state_dict
and the MACs are those of the deployed network, and the card's ``arch_kwargs`` carry
``deploy: true`` so that ``build_model(arch, scale, **arch_kwargs)`` rebuilds that structure.
An fp16 copy (``<name>.fp16.onnx``, :mod:`streamsr.onnx_fp16`) is written beside the ONNX file;
its largest output difference from fp32 on a real LR patch goes into ``fp16_max_abs_error``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from streamsr.errors import InputError, ModelError
from streamsr.evaluate import evaluate_models, image_files, prepare, read_image
from streamsr.lr_degrade import LRDegradation
from streamsr.models import count_params, macs_per_pixel
from streamsr.types import ModelCard
from streamsr.hashing import file_sha256
from train.cli import report_errors
from train.config import REPO_ROOT, TrainConfig, load_config, resolve_path
from train.loop import WEIGHTS_NAME, make_model
from train.measure import torch_selfcheck
from train.sessions import hardware_summary, read_sessions

log = logging.getLogger(__name__)

OPSET = 17
MAX_ABS_DIFF = 1e-4


def export_onnx(model: nn.Module, channels: int, path: Path) -> None:
    """Write ``model`` as ONNX (TorchScript exporter: one self-contained file)."""
    model = model.eval().cpu()
    dummy = torch.rand(1, channels, 32, 32)
    tmp = path.with_name(path.stem + ".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(tmp),
            dynamo=False,
            input_names=["lr"],
            output_names=["sr"],
            opset_version=OPSET,
            dynamic_axes={"lr": {0: "batch", 2: "height", 3: "width"}, "sr": {0: "batch", 2: "out_height", 3: "out_width"}},
        )
    os.replace(tmp, path)


def check_onnx(model: nn.Module, channels: int, path: Path, seed: int = 0) -> float:
    """Max abs difference between onnxruntime and torch on odd sizes and a batch of 2."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in [(1, channels, 37, 53), (2, channels, 24, 17)]:
        x = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            ref = model.eval().cpu()(torch.from_numpy(x)).numpy()
        got = sess.run(["sr"], {"lr": x})[0]
        if got.shape != ref.shape:
            raise ModelError(f"ONNX output shape {got.shape} != torch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst >= MAX_ABS_DIFF:
        raise ModelError(f"ONNX and torch differ by {worst:.2e} (limit {MAX_ABS_DIFF:.0e})")
    return worst


def deploy_form(model: nn.Module, arch_kwargs: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The model as it ships: re-parameterisable models collapsed, their kwargs saying so."""
    reparam = getattr(model, "reparameterize", None)
    if reparam is None:
        return model, dict(arch_kwargs)
    reparam()
    return model, {**arch_kwargs, "deploy": True}


def sample_patch(folder: Path, scale: int, size: int = 96) -> np.ndarray:
    """A real LR luma patch (1, 1, h, w) float32: the centre of the first image in ``folder``."""
    img = read_image(image_files(folder)[0])
    lr = prepare(img, scale, folder.name).lr_y
    h, w = lr.shape
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(lr[y : y + size, x : x + size])[None, None]


def export_fp16(onnx_path: Path, sample: np.ndarray) -> tuple[Path, float]:
    """Write ``<stem>.fp16.onnx`` beside ``onnx_path``; return it and its max abs error on ``sample``."""
    from streamsr.onnx_fp16 import convert_file, max_abs_error

    fp16_path = onnx_path.with_name(onnx_path.stem + ".fp16.onnx")
    tmp = fp16_path.with_name(fp16_path.stem + ".tmp.onnx")
    convert_file(onnx_path, tmp)
    err = max_abs_error(onnx_path, tmp, sample)
    os.replace(tmp, fp16_path)
    return fp16_path, err


def _check_trained_with(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse a config whose model differs from the one the run was trained with (``python -m train``
    copies its config into the run): the weights would load into the wrong network and measure nonsense."""
    trained_path = run_dir / "config.yaml"
    if not trained_path.exists():
        return
    trained = load_config(trained_path)
    if (trained.model, trained.scale) != (cfg.model, cfg.scale):
        raise InputError(
            f"{run_dir} was trained with another model or scale than this config ({trained_path} has "
            f"{trained.model.name} x{trained.scale} {trained.model.kwargs}); export it with the config it was trained with"
        )


def card_metrics(
    card: ModelCard, eval_dirs: list[Path], lr_degrade: list[LRDegradation], threads: int | None
) -> dict[str, Any]:
    """Clean metrics per dataset, and under ``compressed`` the same for every LR degradation."""
    degradations = [LRDegradation()] + [d for d in lr_degrade if d.kind != "none"]
    results = evaluate_models([card], list(eval_dirs), card.scale, degradations, threads)
    metrics: dict[str, Any] = {}
    for ds, rows in results.items():
        for spec, row in rows.items():
            entry = {
                "psnr": round(row[card.name]["psnr"], 4),
                "ssim": round(row[card.name]["ssim"], 4),
                "bicubic_psnr": round(row["bicubic"]["psnr"], 4),
                "bicubic_ssim": round(row["bicubic"]["ssim"], 4),
                "images": row["images"],
            }
            if "mean_qp" in row:
                entry["mean_qp"] = round(row["mean_qp"], 2)
            if spec == "none":
                metrics[ds] = entry
            else:
                metrics.setdefault("compressed", {}).setdefault(ds, {})[spec] = entry
    return metrics


def load_deployed(cfg: TrainConfig, run_dir: Path) -> tuple[nn.Module, dict[str, Any], int]:
    """The run's final weights in their deployed form, its ``arch_kwargs`` and its input channels."""
    weights = run_dir / WEIGHTS_NAME
    if not weights.exists():
        raise InputError(f"no trained weights at {weights} (has the run finished?)")
    _check_trained_with(cfg, run_dir)
    model = make_model(cfg)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model, arch_kwargs = deploy_form(model.eval(), cfg.model.kwargs)
    channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    return model, arch_kwargs, channels


def fp16_sample(cfg: TrainConfig, eval_dirs: list[Path] | None, channels: int) -> np.ndarray:
    """A real LR patch to measure the fp16 file's error on (a smooth synthetic one if no folder is at hand)."""
    sample_dir = eval_dirs[0] if eval_dirs else (resolve_path(cfg.data.val_dir) if cfg.data.val_dir else None)
    if sample_dir is not None:
        sample = sample_patch(Path(sample_dir), cfg.scale)
    else:
        yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
        sample = (0.5 + 0.4 * np.sin(xx / 5.0) * np.cos(yy / 7.0))[None, None].astype(np.float32)
    return np.repeat(sample, channels, axis=1) if channels != 1 else sample


def training_record(cfg: TrainConfig, config_path: Path, run_dir: Path, onnx_diff: float) -> dict[str, Any]:
    """The card's ``training`` entry: data, config, steps, time, and where each stretch of the run trained."""
    summary: dict[str, Any] = {}
    if (run_dir / "summary.json").exists():
        summary = json.loads((run_dir / "summary.json").read_text())
    try:
        config_rel = str(config_path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        config_rel = str(config_path)
    steps = summary.get("steps", cfg.schedule.steps)
    sessions = read_sessions(run_dir, steps)
    return {
        "data": [Path(d).name for d in cfg.data.train_dirs],
        "config": config_rel,
        "config_sha256": file_sha256(config_path),
        "steps": steps,
        "seed": cfg.seed,
        "wall_time_s": summary.get("wall_time_s"),
        "device": summary.get("device"),
        "threads": summary.get("threads"),
        "precision": summary.get("precision"),
        "hardware": hardware_summary(sessions) or summary.get("hardware"),
        "sessions": sessions or None,
        "lr_pixels_seen": summary.get("lr_pixels_seen") or steps * cfg.data.batch_size * cfg.data.patch_size**2,
        "init_from": cfg.init_from,
        "degradation": cfg.degradation,
        "loss": cfg.loss,
        "onnx_max_abs_diff": onnx_diff,
    }


def export_run(
    cfg: TrainConfig,
    config_path: Path,
    run_dir: Path,
    engines_dir: Path,
    eval_dirs: list[Path] | None = None,
    threads: int | None = None,
    lr_degrade: list[LRDegradation] | None = None,
) -> ModelCard:
    """Export the finished run in ``run_dir`` and return the card written beside the ONNX."""
    model, arch_kwargs, channels = load_deployed(cfg, run_dir)
    engines_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{cfg.model.name}_x{cfg.scale}" if cfg.name is None else cfg.name
    onnx_path, pt_path, card_path = (engines_dir / f"{stem}{ext}" for ext in (".onnx", ".pt", ".json"))
    export_onnx(model, channels, onnx_path)
    diff = check_onnx(model, channels, onnx_path)
    log.info("ONNX matches torch: max abs diff %.2e", diff)
    torch.save(model.state_dict(), pt_path)
    fp16_path, fp16_err = export_fp16(onnx_path, fp16_sample(cfg, eval_dirs, channels))
    log.info("fp16 ONNX %s: max abs error %.2e", fp16_path.name, fp16_err)
    selfcheck = torch_selfcheck(model, cfg.scale)
    card = ModelCard(
        name=stem,
        arch=cfg.model.name,
        scale=cfg.scale,
        colour="y" if channels == 1 else "rgb",
        params=count_params(model),
        macs_per_pixel=macs_per_pixel(model, cfg.scale),
        onnx=onnx_path.name,
        arch_kwargs=arch_kwargs,
        torch_weights=pt_path.name,
        onnx_sha256=file_sha256(onnx_path),
        onnx_fp16=fp16_path.name,
        fp16_max_abs_error=fp16_err,
        training=training_record(cfg, config_path, run_dir, diff),
        metrics={"selfcheck": selfcheck},
        path=card_path,
    )
    if eval_dirs:
        metrics = {"selfcheck": selfcheck, **card_metrics(card, eval_dirs, lr_degrade or [], threads)}
        card = ModelCard(**{**card.__dict__, "metrics": metrics})
    card.save(card_path)
    log.info("wrote %s", card_path)
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.export", description="Export a trained run to engines/.")
    p.add_argument("--config", required=True)
    p.add_argument("--run", help="run folder (default runs/<name>)")
    p.add_argument("--engines", default=str(REPO_ROOT / "engines"), help="output folder")
    p.add_argument("--eval", action="append", default=[], metavar="DIR", help="measure on this folder (repeatable)")
    p.add_argument(
        "--lr-degrade", action="append", default=[], metavar="SPEC",
        help="also measure on compressed LR: jpeg:Q, h264:CRF, hevc:CRF (repeatable)",
    )
    p.add_argument("--threads", type=int, default=None, help="onnxruntime/torch threads for the checks")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def run() -> int:
        cfg = load_config(args.config)
        run_dir = Path(args.run) if args.run else REPO_ROOT / "runs" / cfg.run_name
        degradations = [LRDegradation.parse(d) for d in args.lr_degrade]
        card = export_run(
            cfg, Path(args.config), run_dir, Path(args.engines), [Path(d) for d in args.eval], args.threads, degradations
        )
        print(card.to_json(), end="")
        return 0

    return report_errors(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
