"""Inference engines by explicit name; ``auto`` picks by a fixed, documented preference.

The CPU preference is openvino > onnxruntime > torch: on the 2-core AMD EPYC (AVX-512)
development machine ESPCN x2 at 768x576 ran at about 16, 8 and 5 FPS respectively in fp32
(see BENCHMARKS.md for the command). Heavy imports happen inside each backend's module.
"""
from __future__ import annotations

import importlib
import importlib.util

from streamsr.backends.base import Backend
from streamsr.errors import ConfigError
from streamsr.types import ModelCard

# name -> (module, class, the package it needs)
_BACKENDS = {
    "onnxruntime": ("streamsr.backends.onnxruntime_backend", "OnnxRuntimeBackend", "onnxruntime"),
    "openvino": ("streamsr.backends.openvino_backend", "OpenVinoBackend", "openvino"),
    "torch": ("streamsr.backends.torch_backend", "TorchBackend", "torch"),
}
AUTO_ORDER = ("openvino", "onnxruntime", "torch")
ENGINE_CHOICES = ("auto", *_BACKENDS)


def installed_backends() -> list[str]:
    return [name for name, (_, _, package) in _BACKENDS.items() if importlib.util.find_spec(package)]


def choose_auto(installed: list[str], card: ModelCard) -> str:
    """The first of AUTO_ORDER that is installed and can run the card's model."""
    for name in AUTO_ORDER:
        if name == "torch" and not card.torch_weights:
            continue
        if name in installed:
            return name
    raise ConfigError("no inference engine is installed (pip install onnxruntime)")


def create_backend(engine: str, card: ModelCard, *, threads: int | None = None, precision: str = "fp32") -> Backend:
    if engine == "auto":
        engine = choose_auto(installed_backends(), card)
    if engine not in _BACKENDS:
        raise ConfigError(f"unknown engine {engine!r} (choose from {', '.join(ENGINE_CHOICES)})")
    module_name, class_name, _ = _BACKENDS[engine]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(card, threads=threads, precision=precision)
