"""Training configuration: YAML -> frozen dataclasses; unknown keys are errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from streamsr.errors import ConfigError
from streamsr.typed_config import build, strict_config

REPO_ROOT = Path(__file__).resolve().parents[1]


@strict_config
@dataclass(frozen=True)
class ModelConfig:
    name: str = "espcn"
    kwargs: dict[str, Any] = field(default_factory=dict)


@strict_config
@dataclass(frozen=True)
class DataConfig:
    train_dirs: tuple[str, ...] = ("../shared/data/train/T91", "../shared/data/train/BSDS200")
    # Validation images. Never the reported test sets (Set5, Set14): ``holdout`` takes every
    # n-th image of ``train_dirs`` out of training and validates on those; ``val_dir`` adds a
    # folder of images that training never reads.
    val_dir: str | None = None
    holdout: int = 0  # how many training images are held out for validation
    val_lr_degrade: str = "none"  # validate on compressed LR: jpeg:Q, h264:CRF (streamsr.lr_degrade)
    patch_size: int = 17  # low-resolution patch side; the HR patch is patch_size * scale
    batch_size: int = 64
    # LR pixels of each patch's border left out of the loss: those outputs see the conv's zero
    # padding, which interior pixels of a real image never see.
    loss_border: int = 0
    # Chance, per axis, that a patch is placed against its image's edge; with it, the loss keeps
    # the border where a patch side is the image's own edge (train/data.py, sample_for_loss).
    edge_patches: float = 0.0


@strict_config
@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


@strict_config
@dataclass(frozen=True)
class ScheduleConfig:
    steps: int = 10000
    kind: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    min_lr: float = 1e-5  # cosine floor


@strict_config
@dataclass(frozen=True)
class CCTVConfig:
    """Ranges of the CCTV degradation (train/degrade.py), applied to whole LR luma images.

    Each stage runs with its probability; its strength is drawn uniformly from the range.
    At most one codec per image: JPEG, H.264 or HEVC with the given probabilities (their sum
    at most 1; the rest stays uncompressed).
    """

    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.2, 1.2)  # Gaussian blur of the LR, in LR pixels
    noise_prob: float = 0.5
    noise_sigma: tuple[float, float] = (0.0, 6.0)  # Gaussian sensor noise, on the 0..255 scale
    poisson_prob: float = 0.2  # of the noisy samples, how many get signal-dependent noise
    jpeg_prob: float = 0.8
    jpeg_quality: tuple[int, int] = (25, 90)  # cv2.imencode quality
    h264_prob: float = 0.0
    hevc_prob: float = 0.0
    crf: tuple[int, int] = (22, 40)  # libx264 / libx265 CRF
    clip_frames: tuple[int, int] = (1, 6)  # frames of the clip; 1: the kept frame is an I-frame
    motion: int = 2  # largest pan per frame, LR pixels, in y and in x
    refresh: int = 1  # images degraded anew per training step (the rest keep their last draw)


@strict_config
@dataclass(frozen=True)
class TrainConfig:
    scale: int
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    degradation: Literal["bicubic", "cctv"] = "bicubic"
    cctv: CCTVConfig = field(default_factory=CCTVConfig)
    loss: Literal["l1", "mse"] = "l1"
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    seed: int = 0
    threads: int | None = None  # torch.set_num_threads; None: every core this process may use
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: bf16 autocast (fp32 master weights) where the hardware computes bf16 natively
    # (CUDA, or a CPU with AVX512-BF16/AMX), fp32 elsewhere: emulated bf16 is 12-16x slower.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    init_from: str | None = None  # weights or checkpoint whose matching tensors start the model
    # decay of an exponential moving average of the weights, updated every step (0: none); where
    # set, the average is what validates, what weights.pt holds and what a later phase starts from
    ema_decay: float = 0.0
    log_every: int = 100
    val_every: int = 1000
    ckpt_every: int = 1000
    name: str | None = None  # model name in engines/; default <model.name>_x<scale>
    run: str | None = None  # the run's folder in runs/ when not the model name (a later phase of a model)

    @property
    def run_name(self) -> str:
        return self.run or self.name or f"{self.model.name}_x{self.scale}"


def resolve_path(p: str | Path) -> Path:
    """A config path: absolute as is, relative to the repository root otherwise."""
    path = Path(p).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    cfg = build(TrainConfig, data, "config")
    if cfg.scale not in (2, 3, 4, 8):
        raise ConfigError(f"config.scale: expected 2, 3, 4 or 8, got {cfg.scale}")
    if cfg.schedule.steps <= 0 or cfg.data.batch_size <= 0 or cfg.data.patch_size < 4:
        raise ConfigError("config: steps and batch_size must be positive, patch_size >= 4")
    if not 0 <= 2 * cfg.data.loss_border < cfg.data.patch_size:
        raise ConfigError("config.data.loss_border: expected 0 <= 2 * loss_border < patch_size")
    if not 0 <= cfg.data.edge_patches <= 1:
        raise ConfigError("config.data.edge_patches: expected a chance between 0 and 1")
    if not 0 <= cfg.ema_decay < 1:
        raise ConfigError("config.ema_decay: expected 0 (no average) or a decay below 1, such as 0.999")
    if cfg.data.holdout < 0:
        raise ConfigError("config.data.holdout: expected >= 0")
    return cfg


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config not found: {path}") from None
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"unreadable config {path}: {e}") from None
    return config_from_dict(data or {})

