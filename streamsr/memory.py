"""A memory budget for a run, and the plan that keeps `enhance` inside it.

What a run holds, besides the interpreter, libraries and model (about 0.3 GB, fixed):

- the decoded-frames queue: input frames (Y plus chroma);
- one batch in inference: the uint8/uint16 input, its float32 copy, the network's
  activations (``activation_bytes_per_pixel``: the widest layers, in float32, side by
  side) and the float32 and integer outputs;
- the inferred-frames queue: upscaled luma plus the input's chroma;
- the encoder: a few upscaled frames being converted and x264/x265's own look-ahead,
  threads and B-frames, about ``ENCODER_FRAMES`` output frames at the veryfast preset.

The budget (by default a quarter of the memory available when the run starts, at most
``DEFAULT_CEILING``; ``--memory-budget`` sets it) is shared out: half to inference (split
between the calls an engine keeps in flight: OpenVINO runs two streams, each with its own
buffers), a quarter to each queue. Inference gets at most ``max_batch`` frames per call and,
when one frame alone does not fit, runs in tiles of at most ``max_pixels`` input pixels
(streamsr/tiling.py, seamless). Queues hold at least two frames whatever the budget, so a
budget smaller than a few frames is exceeded by those frames, never refused. The encoder's
own frames and the fixed ``BASELINE`` are not shared out of the budget (they depend on the
output size and the libraries only); ``MemoryPlan.expected_peak`` adds them up.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from streamsr.errors import ConfigError
from streamsr.types import ModelCard

GiB = 1 << 30
MiB = 1 << 20
DEFAULT_FRACTION = 0.25
DEFAULT_CEILING = 2 * GiB
MIN_BUDGET = 128 * MiB
MIN_QUEUE_FRAMES = 2
MAX_QUEUE_FRAMES = 8  # or twice the batch, whichever is more, when the bytes allow
MIN_TILE_PIXELS = 256 * 256
# Output frames x264 holds at the veryfast preset on 2 cores (look-ahead 10, 3 B-frames, frame
# threads): a 7680x4320 output (4K in, x2) took 2.4 GiB in all, of which ~1 GiB is the encoder's.
ENCODER_FRAMES = 20
BASELINE = 200 * MiB  # interpreter, NumPy, PyAV, OpenCV, the engine and the model (measured 0.1-0.25 GiB)
# The CPU engines hold about this many float32 values per input pixel and feature channel of
# the widest layer pair: one inference of ESPCN x2 (64 + 32 features, 4 outputs) at 1920x1080
# and 960x540 grew the peak RSS by 429 (OpenVINO), 484 (ONNX Runtime) and 516 (torch) bytes
# per input pixel, i.e. 1.07 to 1.29 times 4 * 100; RepSR (32 features, expansion 2) 302, less
# than its estimate. BENCHMARKS.md "Peak memory" has the command.
ENGINE_OVERHEAD = 1.3


def available_memory() -> int:
    """Bytes the kernel says can be allocated without swapping (MemAvailable), else free RAM."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * GiB


def default_budget(available: int | None = None) -> int:
    available = available_memory() if available is None else available
    return max(MIN_BUDGET, min(int(available * DEFAULT_FRACTION), DEFAULT_CEILING))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"1.5G"``, ``"800M"``, ``"512MiB"`` or a byte count -> bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ConfigError(f"cannot read {text!r} as a size (examples: 800M, 2G)")
    value = float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " ")
    if value < MIN_BUDGET:
        raise ConfigError(f"a memory budget of {text} is below the minimum of {MIN_BUDGET // MiB} MiB")
    return int(value)


def widest_layers(card: ModelCard) -> int:
    """Feature channels of the two widest consecutive layers, from the card's architecture
    arguments (``features`` as a number or a list), else estimated from its MACs per pixel."""
    features = card.arch_kwargs.get("features")
    if isinstance(features, int):
        widths = [features * max(1, int(card.arch_kwargs.get("expansion", 1)))] * 2
    elif isinstance(features, (list, tuple)) and features:
        widths = sorted(int(f) for f in features)[-2:]
    else:  # a 3x3 network of width C costs about 9 C^2 MACs per pixel per layer
        widths = [max(16, int((card.macs_per_pixel / 9) ** 0.5))] * 2
    return sum(widths) + card.scale * card.scale


def activation_bytes_per_pixel(card: ModelCard) -> int:
    """float32 bytes of activations alive at once, per input pixel, with engine overhead."""
    return int(4 * widest_layers(card) * ENGINE_OVERHEAD)


@dataclass(frozen=True)
class MemoryPlan:
    budget: int  # bytes
    max_batch: int  # frames per inference call
    max_pixels: int  # input pixels per inference call; a larger frame runs in tiles
    tiled: bool  # frames of the planned size are larger than max_pixels
    queue_frames: int  # each queue's length in frames
    queue_bytes: int  # each queue's length in bytes (the tighter of the two applies)
    expected_bytes: int  # what the plan expects the frame data to take at most
    encoder_bytes: int = 0  # what the encoder is expected to hold (not shared out of the budget)

    @property
    def expected_peak(self) -> int:
        return BASELINE + self.expected_bytes + self.encoder_bytes

    def describe(self) -> str:
        tiles = f", tiles of {self.max_pixels / 1e6:.3g} MP" if self.tiled else ""
        return (f"budget {self.budget / GiB:.2f} GiB: batch {self.max_batch}{tiles}, "
                f"queues {self.queue_frames} frames, expected peak ~{self.expected_peak / GiB:.2f} GiB")


def plan_memory(budget: int, width: int, height: int, scale: int, card: ModelCard, *,
                sample_bytes: int = 1, chroma_share: float = 0.5, batch: int = 1,
                max_pixels: int | None = None, in_flight: int = 1) -> MemoryPlan:
    """How ``enhance`` runs frames of ``width`` x ``height`` within ``budget`` bytes.

    ``sample_bytes`` is 1 for 8-bit planes, 2 for deeper ones; ``chroma_share`` the chroma
    samples per luma sample (0.5 for 4:2:0, 1 for 4:2:2, 2 for 4:4:4). ``batch`` and
    ``max_pixels`` are what the user asked for: the plan never exceeds them. ``in_flight``
    is how many calls the engine runs at once, each with its own buffers.
    """
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, not {batch}")
    pixels = max(1, width * height)
    s2 = scale * scale
    in_frame = int(pixels * (1 + chroma_share) * sample_bytes)
    out_frame = int(pixels * (s2 + chroma_share) * sample_bytes)  # upscaled luma, chroma not yet
    per_pixel = pixel_cost(card, sample_bytes)
    infer_budget, queue_budget = budget // 2, budget // 4

    in_flight = max(1, in_flight)
    call_pixels = max(MIN_TILE_PIXELS, infer_budget // (per_pixel * in_flight))
    if max_pixels is not None:
        call_pixels = min(call_pixels, max_pixels)
    max_batch = min(batch, max(1, call_pixels // pixels))
    tiled = pixels > call_pixels
    queue_frames = max(MIN_QUEUE_FRAMES, min(max(MAX_QUEUE_FRAMES, 2 * max_batch), queue_budget // max(1, out_frame)))
    queue_bytes = max(queue_budget, MIN_QUEUE_FRAMES * out_frame)
    working = in_flight * (per_pixel * min(pixels * max_batch, call_pixels) + in_frame * max_batch)
    # both queues full, plus the frames in the encoder stage (chroma upscaled, converted)
    out_full = pixels * s2 * (1 + chroma_share) * sample_bytes  # an output frame with its chroma
    expected = working + queue_frames * (in_frame + out_frame) + 3 * out_full
    return MemoryPlan(budget, max_batch, call_pixels, tiled, queue_frames, queue_bytes, int(expected),
                      int(ENCODER_FRAMES * out_full))


def pixel_cost(card: ModelCard, sample_bytes: int = 1) -> int:
    """Bytes per input pixel of one inference call: input, its float copy, activations, outputs."""
    s2 = card.scale * card.scale
    return 4 + activation_bytes_per_pixel(card) + 4 * s2 + sample_bytes * (1 + s2)
