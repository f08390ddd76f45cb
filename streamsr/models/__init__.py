"""Torch super-resolution architectures and a name registry (torchvision style).

Importing this package imports torch. The runtime imports it only from the torch backend;
``train/`` uses it to build, train and export models.

    >>> from streamsr.models import build_model
    >>> net = build_model("espcn", scale=3)
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch
from torch import nn

from streamsr.errors import ModelError

__all__ = ["register_model", "build_model", "model_names", "count_params", "macs_per_pixel"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Decorator: register a builder ``fn(scale, **kwargs) -> nn.Module`` under ``name``."""

    def deco(fn: F) -> F:
        if name in _REGISTRY:
            raise ModelError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def model_names() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, scale: int, **kwargs: Any) -> nn.Module:
    """Build a registered architecture for ``scale``; unknown names raise :class:`ModelError`."""
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r} (known: {', '.join(model_names())})") from None
    try:
        return builder(scale, **kwargs)
    except TypeError as e:
        raise ModelError(f"bad arguments for model {name!r}: {e}") from None


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_pixel(model: nn.Module, scale: int, channels: int | None = None, size: int = 8) -> int:
    """Multiply-accumulates per *input* pixel, counted from every ``Conv2d`` (and ``Linear``).

    Runs the model once on a ``size x size`` input with forward hooks and divides the total
    by ``size * size``. Exact for fully convolutional models with 'same' padding (the count
    of a conv is out_pixels * out_channels * in_channels / groups * kh * kw). A conv on a pooled
    grid counts at that grid's size (SAFMN's 1/2, 1/4, 1/8 levels: exact when ``size`` is a
    multiple of 8). Elementwise work is not counted: activations, norms, pooling, resizing,
    products and sums (a few % of SAFMN's count, nothing in the plain conv nets).
    """
    del scale  # the output size follows from the model; kept for a uniform signature
    if channels is None:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first.in_channels if first is not None else 1
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            per_out = mod.in_channels // mod.groups * kh * kw
            total += out.numel() * per_out
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size))
    finally:
        for h in handles:
            h.remove()
    return total // (size * size)


# Register the architectures (import for the side effect).
from streamsr.models import edsr, espcn, repsr, safmn, srcnn, wresnet  # noqa: E402,F401
