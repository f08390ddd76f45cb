"""Inference engines by explicit name; ``auto`` picks by a fixed, documented preference.

On an NVIDIA GPU: tensorrt > cuda (torch). On the CPU: openvino > onnxruntime > torch; on
the 2-core AMD EPYC (AVX-512) development machine ESPCN x2 at 768x576 ran at 18.2, 16.6
and 5.2 FPS respectively in fp32 (BENCHMARKS.md has the command). The GPU order is the
usual one (TensorRT fuses and tunes kernels per GPU) and has not been measured here.
Heavy imports happen inside each backend's module. The GPU engines move uint8 planes only,
so ``auto`` skips them for deeper (10-bit) input.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging

from streamsr.backends.base import Backend
from streamsr.backends.precision import auto_precision
from streamsr.errors import ConfigError
from streamsr.types import ModelCard

# name -> (module, class, the package it needs)
_BACKENDS = {
    "onnxruntime": ("streamsr.backends.onnxruntime_backend", "OnnxRuntimeBackend", "onnxruntime"),
    "openvino": ("streamsr.backends.openvino_backend", "OpenVinoBackend", "openvino"),
    "torch": ("streamsr.backends.torch_backend", "TorchBackend", "torch"),
    "cuda": ("streamsr.backends.cuda_backend", "CudaBackend", "torch"),
    "tensorrt": ("streamsr.backends.tensorrt_backend", "TensorRTBackend", "tensorrt"),
}
AUTO_ORDER = ("tensorrt", "cuda", "openvino", "onnxruntime", "torch")
ENGINE_CHOICES = ("auto", *_BACKENDS)
_NEEDS_CUDA = {"cuda", "tensorrt"}
_NEEDS_TORCH_WEIGHTS = {"torch", "cuda"}
_EIGHT_BIT_ONLY = {"cuda", "tensorrt"}
log = logging.getLogger(__name__)


def cuda_visible() -> bool:
    """torch is installed and sees a CUDA device (imports torch only when it is installed)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def installed_backends() -> list[str]:
    """Engines whose packages are installed and, for the GPU ones, that have a GPU to run on."""
    found = [name for name, (_, _, package) in _BACKENDS.items() if importlib.util.find_spec(package)]
    if any(name in _NEEDS_CUDA for name in found) and not cuda_visible():
        found = [name for name in found if name not in _NEEDS_CUDA]
    return found


def runs_on_gpu(engine: str) -> bool:
    """Whether ``engine`` (``auto`` included) runs the model on an NVIDIA GPU."""
    return engine in _NEEDS_CUDA or (engine == "auto" and any(name in _NEEDS_CUDA for name in installed_backends()))


def choose_auto(installed: list[str], card: ModelCard) -> str:
    """The first of AUTO_ORDER that is installed and can run the card's model."""
    for name in AUTO_ORDER:
        if name in _NEEDS_TORCH_WEIGHTS and not card.torch_weights:
            continue
        if name in installed:
            return name
    raise ConfigError("no inference engine is installed (pip install onnxruntime)")


def create_backend(engine: str, card: ModelCard, *, threads: int | None = None, precision: str = "fp32",
                   bit_depth: int = 8) -> Backend:
    if engine == "auto":
        installed = installed_backends()
        if bit_depth > 8 and any(name in _EIGHT_BIT_ONLY for name in installed):
            log.info("%d-bit input: the GPU engines take 8-bit planes only, choosing among the CPU ones", bit_depth)
            installed = [name for name in installed if name not in _EIGHT_BIT_ONLY]
        engine = choose_auto(installed, card)
    if engine not in _BACKENDS:
        raise ConfigError(f"unknown engine {engine!r} (choose from {', '.join(ENGINE_CHOICES)})")
    module_name, class_name, _ = _BACKENDS[engine]
    cls = getattr(importlib.import_module(module_name), class_name)
    if precision == "auto":
        precision = auto_precision(engine, card, cls.default_precision)
    return cls(card, threads=threads, precision=precision)
