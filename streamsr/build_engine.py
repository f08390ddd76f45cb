"""`streamsr build-engine`: build and cache a TensorRT engine ahead of time."""
from __future__ import annotations

import argparse

from streamsr import zoo
from streamsr.backends.engine_cache import ShapeProfile
from streamsr.enhance import SCALES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name or a card path (default: as enhance)")
    p.add_argument("--scale", type=int, default=2, choices=SCALES)
    p.add_argument("--precision", default="fp16", choices=("fp16", "fp32"))
    p.add_argument("--width", type=int, required=True, help="input frame width")
    p.add_argument("--height", type=int, required=True, help="input frame height")
    p.add_argument("--batch", type=int, default=16, help="largest batch the engine accepts (default 16)")


def run(args: argparse.Namespace) -> int:
    from streamsr.backends.tensorrt_backend import ensure_plan

    card = zoo.resolve_model(args.model, args.scale)
    plan = ensure_plan(card, ShapeProfile.for_stream(args.height, args.width, args.batch), args.precision)
    print(plan)
    return 0
