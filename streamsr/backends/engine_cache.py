"""Where built TensorRT engines are kept, and the key that says when one may be reused.

A plan is only valid for the exact ONNX file, input shape range, precision, TensorRT
version and GPU it was built for. The key hashes all of them; the JSON beside each plan
keeps them readable, so a mismatch can be explained instead of failing obscurely.

Every file here is written atomically (``atomic_write_bytes``): a unique temporary name in the
same folder, fsync, ``os.replace``, fsync of the folder. A crash, a full disk or two processes
building at once leave either the old file or the new one, never a torn plan that a later run
would load.

``ShapeProfile.for_stream`` is the one computation of the shapes an engine must accept: the
runtime (``TensorRTBackend``) and ``streamsr build-engine`` both call it with the frame size,
the pipeline's batch and the pixel ceiling, so a plan built ahead of time has the key the
runtime looks up.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from streamsr.backends.base import TILE_OVERLAP
from streamsr.durable import atomic_write_bytes
from streamsr.errors import ConfigError
from streamsr.tiling import tile_for_budget, tile_spans
from streamsr.types import ModelCard

DEFAULT_BATCH = 1  # frames per call when the caller names none: enhance's and build-engine's --batch


def stream_tile(height: int, width: int, batch: int, max_pixels: int | None) -> int | None:
    """The kept tile side for frames of ``height`` x ``width`` sent ``batch`` at a time, or None
    when whole batches fit in ``max_pixels``. Fixed per stream (from the pipeline's batch, not
    each call's), so every call fits one optimisation profile."""
    if max_pixels is None or batch * height * width <= max_pixels:
        return None
    try:
        return tile_for_budget(max_pixels // batch, TILE_OVERLAP)
    except ValueError:
        raise ConfigError(f"--max-pixels {max_pixels} is too small for batches of {batch} "
                          f"(a tile needs at least {(16 + 2 * TILE_OVERLAP) ** 2} pixels per frame)") from None


def _read_lengths(length: int, tile: int | None) -> list[int]:
    """Lengths along one axis of the pieces sent: the whole axis, or each tile with its overlap."""
    if tile is None:
        return [length]
    return [r1 - r0 for r0, r1, _, _ in tile_spans(length, tile, TILE_OVERLAP)]


@dataclass(frozen=True)
class ShapeProfile:
    """An optimisation profile: (batch, height, width) at its minimum, optimum and maximum."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    @classmethod
    def for_stream(cls, height: int, width: int, batch: int, max_pixels: int | None = None) -> ShapeProfile:
        """Every (batch, height, width) the runtime sends for this stream, and its usual one.

        Batches run from 1 (the end of a file, a timed-out live batch) to the pipeline's
        ``batch``, which is also the optimum. Frames over ``max_pixels`` go as tiles
        (``stream_tile``), all of one shape (``tiling.tile_grid``); height and width then span
        whatever pieces the tiling sends, otherwise they are the frame's.
        """
        if batch < 1 or height < 1 or width < 1:
            raise ConfigError(f"an engine needs a batch and a frame size of at least 1, not {batch} x {width}x{height}")
        tile = stream_tile(height, width, batch, max_pixels)
        heights, widths = _read_lengths(height, tile), _read_lengths(width, tile)
        top = (batch, max(heights), max(widths))
        return cls(min=(1, min(heights), min(widths)), opt=top, max=top)

    def covers(self, batch: int, height: int, width: int) -> bool:
        return all(lo <= v <= hi for lo, v, hi in zip(self.min, (batch, height, width), self.max))


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    profile: ShapeProfile
    precision: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def differences(self, other: EngineKey) -> list[str]:
        """Human-readable fields in which ``other`` differs from this key."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k}: {theirs[k]} -> {mine[k]}" for k in mine if mine[k] != theirs[k]]


def cache_dir(card: ModelCard) -> Path:
    """$STREAMSR_CACHE, else ``cache/`` beside the model if writable, else ~/.cache/streamsr."""
    if env := os.environ.get("STREAMSR_CACHE"):
        return Path(env)
    beside = card.file("cache")
    if os.access(beside.parent, os.W_OK):
        return beside
    return Path.home() / ".cache" / "streamsr"


def plan_path(folder: Path, card: ModelCard, key: EngineKey) -> Path:
    return folder / f"{card.name}.{key.precision}.{key.digest()}.plan"


def write_key(plan: Path, key: EngineKey) -> None:
    text = json.dumps(asdict(key), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(plan.with_suffix(".json"), text.encode())


def read_key(meta: Path) -> EngineKey | None:
    try:
        data = json.loads(meta.read_text())
        data["profile"] = ShapeProfile(**{k: tuple(v) for k, v in data["profile"].items()})
        return EngineKey(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def stale_reasons(folder: Path, card: ModelCard, key: EngineKey) -> list[str]:
    """Why no cached plan of this model and precision fits ``key`` (empty when there is none)."""
    reasons = []
    for meta in sorted(folder.glob(f"{card.name}.{key.precision}.*.json")):
        old = read_key(meta)
        if old is not None and old != key:
            reasons.append(f"{meta.with_suffix('.plan').name} ({'; '.join(key.differences(old))})")
    return reasons
