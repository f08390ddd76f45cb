"""The Backend contract: planes in, planes of the same type out. A backend computes; it decides no policy.

Planes are uint8, or uint16 code values for deeper video; ``Backend.luma`` (a
colour.LumaScale, set by the caller like ``max_pixels``) says how codes map to the models'
[0, 1] floats. The default is 8-bit, the ``Y / 255`` of every 8-bit path.
"""
from __future__ import annotations

import os
from abc import ABC

import numpy as np

from streamsr.colour import LumaScale, luma_to_unit, unit_to_luma
from streamsr.tiling import run_tiled, tile_grid
from streamsr.types import ModelCard

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")  # auto: streamsr.backends.precision
# Input pixels of context around each tile: more than the receptive-field radius of every
# shipped architecture (ESPCN 4, SRCNN 8, a 17-layer 3x3 network 17).
TILE_OVERLAP = 24


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def to_network_input(batch: np.ndarray, luma: LumaScale | None = None) -> np.ndarray:
    """uint8/uint16 (N, H, W) or (N, H, W, C) -> float32 NCHW in [0, 1] (8-bit by default)."""
    luma = luma or LumaScale()
    if batch.dtype != luma.dtype:
        raise TypeError(f"{batch.dtype} planes for {luma.bits}-bit luma")
    x = luma_to_unit(batch, luma)
    if x.ndim == 3:
        return x[:, None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def from_network_output(y: np.ndarray, colour_channels: int, luma: LumaScale | None = None) -> np.ndarray:
    """float NCHW in [0, 1] -> code values (N, H, W) or (N, H, W, C), rounded and clamped."""
    out = unit_to_luma(y, luma or LumaScale())
    if colour_channels == 1:
        return out[:, 0]
    return np.ascontiguousarray(out.transpose(0, 2, 3, 1))


def to_uint8(y: np.ndarray, colour_channels: int) -> np.ndarray:
    """float NCHW in [0, 1] -> uint8 (N, H, W) or (N, H, W, C), rounded and clamped."""
    return from_network_output(y, colour_channels)


class Done:
    """A batch whose result is already computed (the CPU backends work synchronously)."""

    def __init__(self, value: np.ndarray) -> None:
        self.value = value

    def result(self) -> np.ndarray:
        return self.value


class Backend(ABC):
    """Runs one model on batches of same-sized uint8 planes (Y models) or images (RGB models).

    ``submit(batch).result()`` is the asynchronous form: a GPU backend returns at once and
    keeps ``in_flight`` batches queued so that upload, compute and download overlap.
    """

    name: str = "?"
    in_flight: int = 1
    default_precision: str = "fp32"

    def __init__(self, card: ModelCard, *, threads: int | None = None, precision: str = "fp32") -> None:
        self.card = card
        self.threads = threads or default_threads()
        self.precision = precision
        self.max_pixels: int | None = None  # per call; larger batches are tiled (memory ceiling)
        self.luma = LumaScale()  # how plane code values map to [0, 1]; set by the caller

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W[, C]) planes -> (N, sH, sW[, C]) of the same dtype, tiled when over ``max_pixels``."""
        if self._over_budget(batch):
            return self._run_tiled(batch)
        return self._run_whole(batch)

    def submit(self, batch: np.ndarray) -> Done:
        """Start ``batch``; the caller keeps at most ``in_flight`` submitted and not yet collected."""
        if self._over_budget(batch):
            return Done(self._run_tiled(batch))
        return self._submit_whole(batch)

    def _over_budget(self, batch: np.ndarray) -> bool:
        n, h, w = batch.shape[:3]
        return self.max_pixels is not None and n * h * w > self.max_pixels

    def _run_tiled(self, batch: np.ndarray) -> np.ndarray:
        n, h, w = batch.shape[:3]
        tile = tile_grid(h, w, self.max_pixels // n, TILE_OVERLAP)
        return run_tiled(self._run_whole, batch, self.card.scale, tile, TILE_OVERLAP)

    def _submit_whole(self, batch: np.ndarray) -> Done:
        return Done(self._run_whole(batch))

    def _run_whole(self, batch: np.ndarray) -> np.ndarray:
        return from_network_output(self.infer(to_network_input(batch, self.luma)), self.card.channels, self.luma)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 NCHW in [0, 1] -> float32 NCHW, unclamped (backends that work on floats)."""
        raise NotImplementedError(f"the {self.name} backend works on uint8 planes only")

    def describe(self) -> str:
        return f"{self.name} ({self.precision}, {self.threads} threads)"

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
