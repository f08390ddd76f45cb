"""`streamsr build-engine`: build and cache a TensorRT engine ahead of time.

The profile comes from ``ShapeProfile.for_stream``, the computation the runtime uses: built
with the frame size, ``--batch`` and ``--max-pixels`` that ``enhance`` is given, the plan is
the one ``enhance --engine tensorrt`` looks up.
"""
from __future__ import annotations

import argparse

from streamsr import zoo
from streamsr.backends.engine_cache import DEFAULT_BATCH, ShapeProfile
from streamsr.enhance import SCALES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name or a card path (default: as enhance)")
    p.add_argument("--scale", type=int, default=2, choices=SCALES)
    p.add_argument("--precision", default="fp16", choices=("fp16", "fp32"))
    p.add_argument("--width", type=int, required=True, help="input frame width")
    p.add_argument("--height", type=int, required=True, help="input frame height")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"frames per inference call, as given to enhance (default {DEFAULT_BATCH})")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="the pixel ceiling per inference call, as given to enhance (default: no limit)")


def run(args: argparse.Namespace) -> int:
    profile = ShapeProfile.for_stream(args.height, args.width, args.batch, args.max_pixels)
    from streamsr.backends.tensorrt_backend import ensure_plan

    card = zoo.resolve_model(args.model, args.scale)
    plan = ensure_plan(card, profile, args.precision)
    print(plan)
    return 0
