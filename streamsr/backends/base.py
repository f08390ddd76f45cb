"""The Backend contract: uint8 planes in, uint8 planes out. A backend computes; it decides no policy."""
from __future__ import annotations

import os
from abc import ABC

import numpy as np

from streamsr.tiling import run_tiled, tile_for_budget
from streamsr.types import ModelCard

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")  # auto: streamsr.backends.precision
# Input pixels of context around each tile: more than the receptive-field radius of every
# shipped architecture (ESPCN 4, SRCNN 8, a 17-layer 3x3 network 17).
TILE_OVERLAP = 24


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def to_network_input(batch: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 NCHW in [0, 1]."""
    x = batch.astype(np.float32)
    x *= 1.0 / 255.0
    if x.ndim == 3:
        return x[:, None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def to_uint8(y: np.ndarray, colour_channels: int) -> np.ndarray:
    """float NCHW in [0, 1] -> uint8 (N, H, W) or (N, H, W, C), rounded and clamped."""
    y = np.asarray(y, dtype=np.float32)
    y = y * 255.0
    y += 0.5
    np.clip(y, 0.0, 255.0, out=y)
    out = y.astype(np.uint8)
    if colour_channels == 1:
        return out[:, 0]
    return np.ascontiguousarray(out.transpose(0, 2, 3, 1))


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

    def run(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W[, C]) -> uint8 (N, sH, sW[, C]), tiled when over ``max_pixels``."""
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
        tile = tile_for_budget(self.max_pixels // batch.shape[0], TILE_OVERLAP)
        return run_tiled(self._run_whole, batch, self.card.scale, tile, TILE_OVERLAP)

    def _submit_whole(self, batch: np.ndarray) -> Done:
        return Done(self._run_whole(batch))

    def _run_whole(self, batch: np.ndarray) -> np.ndarray:
        return to_uint8(self.infer(to_network_input(batch)), self.card.channels)

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
