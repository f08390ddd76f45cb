"""Set14 x2 Y-PSNR against MACs per LR pixel: our models, the measured peers, the published anchors.

    python benchmarks/plot_quality.py benchmarks/results/quality_x2.json [more.json ...] -o docs/quality_x2.png

Reads the JSON of ``benchmarks/quality.py`` (our shipped models and OpenCV dnn_superres's
graphs, measured on the same inputs). Left: clean input, with the published anchors beside
them. Right: the gain over bicubic of the same input when the LR is an H.264 CRF 28 clip and
a JPEG of quality 40 (published papers give no compressed numbers, so only measured models
appear there). Needs matplotlib (``pip install matplotlib``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from plotting import pyplot, save

# Published x2 results (Y-PSNR, Set5 / Set14) and MACs per LR pixel, from each paper's tables:
# FSRCNN (Dong et al. 2016; 12.46k params, all at LR resolution but a 9x9 deconvolution),
# SESR-M5 / M11 (Bhardwaj et al. 2022; 13.52k / 27.34k params, all at LR resolution),
# SAFMN (Sun et al. 2023; 52 GFLOPs for a 1280x720 output = 640x360 LR pixels),
# VDSR (Kim et al. 2016; 665k params at HR resolution: x4 per LR pixel at x2),
# ESPCN as issue 10 states its published x2 figure (the paper itself reports x3).
PUBLISHED_X2 = {
    "ESPCN": (36.80, 32.40, 21_184),
    "FSRCNN": (37.00, 32.63, 12_464),
    "SESR-M5": (37.39, 32.84, 13_520),
    "SESR-M11": (37.58, 33.03, 27_340),
    "SAFMN": (38.00, 33.54, 225_694),
    "VDSR": (37.53, 33.05, 2_660_000),
}
ESPCN_X2_MACS = 21_184
COMPRESSED = ("h264:28", "jpeg:40")


def merged_results(paths: list[Path], dataset: str) -> tuple[dict, dict]:
    """One dataset's rows and the MACs of several runs of quality.py on the same inputs: a peer
    measured once need not be run again when one of our models changes. The runs must agree on
    bicubic, which proves the inputs were the same."""
    rows: dict[str, dict] = {}
    macs: dict[str, int] = {}
    for path in paths:
        data = json.loads(path.read_text())
        for spec, by_model in data["datasets"][dataset].items():
            if spec in rows and abs(rows[spec]["bicubic"]["psnr"] - by_model["bicubic"]["psnr"]) > 1e-6:
                raise SystemExit(f"{path}: bicubic on {dataset} {spec} differs from the earlier files: not the same inputs")
            rows.setdefault(spec, {}).update(by_model)
        macs.update(data["macs_per_lr_pixel"])
    return rows, macs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, nargs="+",
                   help="JSON of benchmarks/quality.py at x2; with several, a model in a later file replaces it in an earlier one")
    p.add_argument("-o", "--out", type=Path, default=Path("docs/quality_x2.png"))
    p.add_argument("--dataset", default="Set14")
    args = p.parse_args(argv)
    plt = pyplot()
    if plt is None:
        return 2
    rows, macs = merged_results(args.results, args.dataset)
    fig, (clean_ax, comp_ax) = plt.subplots(1, 2, figsize=(13, 5.2))

    for name, (_, set14, m) in PUBLISHED_X2.items():
        clean_ax.scatter(m, set14, marker="s", color="0.55", zorder=2)
        clean_ax.annotate(f"{name} (published)", (m, set14), fontsize=7, color="0.35", xytext=(4, -9), textcoords="offset points")
    for name, m in macs.items():
        peer = name.startswith("peer:")
        style = dict(marker="o", facecolors="none", edgecolors="tab:orange") if peer else dict(marker="o", color="tab:blue")
        label = name.replace("peer:", "OpenCV ")
        psnr = rows["none"][name]["psnr"]
        clean_ax.scatter(m, psnr, zorder=3, **style)
        # beside a published anchor of the same cost, the label goes left, clear of the anchor's
        crowded = any(abs(a - psnr) < 0.3 and 0.8 < am / m < 1.25 for _, a, am in PUBLISHED_X2.values())
        clean_ax.annotate(label, (m, psnr), fontsize=7, xytext=(-4, 3) if crowded else (4, 3),
                          ha="right" if crowded else "left", textcoords="offset points")
        for spec, colour in zip(COMPRESSED, ("tab:red", "tab:green")):
            if spec in rows:
                gain = rows[spec][name]["psnr"] - rows[spec]["bicubic"]["psnr"]
                comp_ax.scatter(m, gain, marker="o", zorder=3, **({"facecolors": "none", "edgecolors": colour} if peer else {"color": colour}))
                comp_ax.annotate(label, (m, gain), fontsize=6, xytext=(4, 2), textcoords="offset points")
    bic = rows["none"]["bicubic"]["psnr"]
    clean_ax.axhline(bic, color="0.7", ls=":", lw=1)
    clean_ax.annotate(f"bicubic {bic:.2f}", (3_000, bic), fontsize=7, color="0.4", xytext=(0, 3), textcoords="offset points")
    for ax in (clean_ax, comp_ax):
        ax.set_xscale("log")
        ax.set_xlabel("MACs per LR pixel")
        for budget, text in ((2, "fast tier (2x ESPCN)"), (10, "quality tier (10x)")):
            ax.axvline(budget * ESPCN_X2_MACS, color="0.8", ls="--", lw=1)
            ax.annotate(text, (budget * ESPCN_X2_MACS, ax.get_ylim()[0]), fontsize=7, color="0.5", rotation=90, xytext=(2, 4), textcoords="offset points")
        ax.grid(alpha=0.3)
    comp_ax.axhline(0.0, color="0.7", ls=":", lw=1)
    clean_ax.set_ylabel(f"{args.dataset} x2 Y-PSNR (dB), clean LR")
    comp_ax.set_ylabel(f"{args.dataset} x2 gain over bicubic of the same input (dB)")
    clean_ax.set_title("Clean (MATLAB bicubic LR): filled = ours, hollow = measured peers, grey = published", fontsize=9)
    comp_ax.set_title("Compressed LR: red = H.264 CRF 28 clips, green = JPEG 40 (4:2:0)", fontsize=9)
    save(fig, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
