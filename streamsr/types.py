"""Small frozen value types shared by the runtime and the training module."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from streamsr.errors import ModelError

if TYPE_CHECKING:
    from streamsr.colour import Colour

ColourSpace = Literal["y", "rgb"]


@dataclass(frozen=True)
class VideoInfo:
    """What a source knows about its video stream before the first frame."""

    width: int
    height: int
    rate: Fraction | None  # average frame rate; None when unknown
    time_base: Fraction | None
    frames: int | None  # None when the container does not say
    is_live: bool = False
    pix_fmt: str = "yuv420p"
    colour_matrix: str | None = None  # e.g. "bt709"; None when unspecified
    colour_range: str | None = None  # "tv" (limited) or "pc" (full)
    rotation: int = 0  # degrees, from the display matrix


@dataclass(frozen=True)
class ModelCard:
    """The JSON card that sits beside every shipped ONNX file.

    ``macs_per_pixel`` counts multiply-accumulates per *input* (low-resolution) pixel.
    ``colour`` says what the network sees: "y" is the luma plane alone, "rgb" three channels.
    Tensors are NCHW float32 in [0, 1].
    """

    name: str
    arch: str
    scale: int
    colour: ColourSpace
    params: int
    macs_per_pixel: int
    onnx: str  # file name, relative to the card
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    torch_weights: str | None = None  # state_dict (.pt, load with weights_only=True)
    onnx_sha256: str | None = None
    onnx_fp16: str | None = None
    fp16_max_abs_error: float | None = None
    onnx_int8: str | None = None  # static QDQ int8 (train/quantize.py)
    onnx_int8_sha256: str | None = None
    int8_psnr_loss_db: float | None = None  # largest PSNR drop against fp32 over the inputs measured
    int8_tolerance_db: float | None = None  # the loss that ``--precision auto`` accepts
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)  # where the card was read from

    @property
    def channels(self) -> int:
        return 1 if self.colour == "y" else 3

    def file(self, name: str) -> Path:
        """A file named in the card, resolved beside the card."""
        base = self.path.parent if self.path is not None else Path(".")
        return base / name

    def save(self, path: Path) -> None:
        """Write the card to ``path`` atomically (a reader never sees half a card)."""
        import os

        tmp = Path(path).with_name(Path(path).stem + ".tmp.json")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ModelError(f"model card not found: {path}") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"unreadable model card {path}: {e}") from None
        known = {f for f in cls.__dataclass_fields__ if f != "path"}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"model card {path} has unknown keys: {sorted(unknown)}")
        try:
            return cls(**data, path=Path(path))
        except TypeError as e:
            raise ModelError(f"model card {path} is incomplete: {e}") from None


@dataclass(frozen=True)
class Frame:
    """One picture as it moves through the pipeline.

    ``planes`` is ``(Y, Cb, Cr)``: uint8 arrays, or uint16 code values when ``bit_depth`` is
    above 8 (10-bit video); the chroma planes may be subsampled (4:2:0 or 4:2:2 video) or
    full size (4:4:4 video, images). ``alpha`` rides along for images that have one.
    ``source_planes`` keeps the input planes after inference when ``--compare`` needs them.
    """

    index: int
    planes: tuple[Any, Any, Any]
    pts: int | None = None
    time_base: Fraction | None = None
    name: str | None = None  # file name, for image inputs
    alpha: Any = None
    source_planes: tuple[Any, Any, Any] | None = None
    captured_at: float | None = None  # time.monotonic() when decoded, for latency
    chroma_upscaled: bool = False  # a GPU backend already upscaled Cb/Cr with the luma
    colour: Colour | None = None  # matrix and range of the planes (live frames carry it; None: untagged)
    bit_depth: int = 8  # bits per sample of ``planes``
    full_range: bool = False  # code values span 0..2**bit_depth-1 (images, JPEG-range video)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the luma plane."""
        h, w = self.planes[0].shape[:2]
        return w, h
