"""Validation curves of training runs: held-out PSNR against LR pixels seen, one line per run.

    python benchmarks/plot_curves.py runs/repsr_x2 runs/repsr_cctv_x2 ... -o docs/curves.png

Each run folder holds ``log.csv`` and ``config.yaml`` (kept in git); LR pixels seen are
steps x batch x patch^2. The plot shows whether a curve had flattened when its run stopped.
Needs matplotlib.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from plotting import pyplot, save

import yaml


def curve(run: Path) -> tuple[list[float], list[float], str]:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    per_step = cfg["data"]["batch_size"] * cfg["data"]["patch_size"] ** 2
    xs, ys = [], []
    with open(run / "log.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["val_psnr"]:
                xs.append(int(row["step"]) * per_step / 1e9)
                ys.append(float(row["val_psnr"]))
    what = cfg.get("data", {}).get("val_lr_degrade", "none")
    return xs, ys, f"{run.name} (val LR: {what})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("-o", "--out", type=Path, default=Path("docs/curves.png"))
    args = p.parse_args(argv)
    plt = pyplot()
    if plt is None:
        return 2
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in args.runs:
        xs, ys, label = curve(run)
        if xs:
            ax.plot(xs, ys, marker=".", label=label)
    ax.set_xlabel("LR pixels seen (billions)")
    ax.set_ylabel("validation Y-PSNR on held-out training images (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
