"""Time one training step (forward, L1 loss, backward, Adam) of a training config's model, with
its batch and patch size, in the contiguous and the channels-last layout.

    python benchmarks/train_step.py configs/train/repsr_x2.yaml [--steps 30] [--threads 2] [--json out.json]

Random patches, so it measures compute only (the real loop adds sampling and logging). Pause a
running training (kill -STOP) first, or the two share the cores.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.config import load_config  # noqa: E402
from train.loop import make_model  # noqa: E402
from train.sessions import hardware  # noqa: E402

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def step_ms(cfg, layout: torch.memory_format, steps: int, warmup: int = 5) -> float:
    torch.manual_seed(0)
    model = make_model(cfg).to(memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    n, p, s = cfg.data.batch_size, cfg.data.patch_size, cfg.scale
    x = torch.rand(n, 1, p, p).contiguous(memory_format=layout)
    y = torch.rand(n, 1, p * s, p * s)
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        loss = nn.functional.l1_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps * 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", type=Path)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    times = {name: step_ms(cfg, layout, args.steps) for name, layout in LAYOUTS.items()}
    print(f"{cfg.run_name}: batch {cfg.data.batch_size} x {cfg.data.patch_size}^2 LR px, fp32, "
          f"{args.threads} threads, {hardware()}")
    print(f"{'layout':<14} {'ms/step':>8} {'speed-up':>9}")
    for name, ms in times.items():
        print(f"{name:<14} {ms:8.1f} {times['contiguous'] / ms:8.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"config": str(args.config), "threads": args.threads, "steps": args.steps,
                                         "hardware": hardware(), "ms_per_step": times}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
