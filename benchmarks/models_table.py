"""MODELS.md's tables, printed from the shipped cards (engines/*.json), so the two never disagree.

    python benchmarks/models_table.py [--engines engines] > /tmp/tables.md

Three Markdown tables: clean PSNR/SSIM beside bicubic, compressed-input PSNR beside bicubic
of the same input (every ``lr-degrade`` the cards were measured with), and each model's
training record (steps, LR pixels seen, wall time, hardware, config).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ESPCN_MACS = {2: 21_184, 3: 22_624, 4: 24_640}


def load_cards(folder: Path) -> list[dict[str, Any]]:
    cards = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return sorted(cards, key=lambda c: (c["scale"], c["macs_per_pixel"], c["name"]))


def _pair(entry: dict[str, Any] | None, key: str = "psnr", ssim: bool = True) -> str:
    if not entry:
        return "-"
    return f"{entry[key]:.2f} / {entry[key.replace('psnr', 'ssim')]:.4f}" if ssim else f"{entry[key]:.2f}"


def clean_table(cards: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | MACs / LR px | Set5 bicubic | Set5 model | Set14 bicubic | Set14 model |",
        "|---|---:|---|---|---|---|",
    ]
    for c in cards:
        m = c["metrics"]
        cost = f"{c['macs_per_pixel']:,} ({c['macs_per_pixel'] / ESPCN_MACS.get(c['scale'], 1):.2f}x)"
        cells = [cell for ds in ("Set5", "Set14") for cell in (_pair(m.get(ds), "bicubic_psnr"), _pair(m.get(ds)))]
        lines.append(f"| `{c['name']}` | {cost} | " + " | ".join(cells) + " |")
    return lines


def compressed_table(cards: list[dict[str, Any]], dataset: str) -> list[str]:
    specs = sorted({s for c in cards for s in c["metrics"].get("compressed", {}).get(dataset, {})})
    if not specs:
        return [f"(no card has compressed {dataset} metrics yet)"]
    lines = [
        "| model | " + " | ".join(f"{s}: bicubic → model (gain)" for s in specs) + " |",
        "|---|" + "---|" * len(specs),
    ]
    for c in cards:
        rows = c["metrics"].get("compressed", {}).get(dataset, {})
        cells = []
        for s in specs:
            e = rows.get(s)
            cells.append("-" if not e else f"{e['bicubic_psnr']:.2f} → {e['psnr']:.2f} ({e['psnr'] - e['bicubic_psnr']:+.2f})")
        lines.append(f"| `{c['name']}` | " + " | ".join(cells) + " |")
    return lines


def training_table(cards: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | config | steps | LR pixels seen | wall time | hardware, threads, precision | started from |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for c in cards:
        t = c.get("training", {})
        seen = t.get("lr_pixels_seen")
        wall = t.get("wall_time_s")
        hw = ", ".join(str(x) for x in (t.get("hardware") or "not recorded", f"{t.get('threads')} thr", t.get("precision") or "fp32"))
        lines.append(
            f"| `{c['name']}` | `{t.get('config', '-')}` | {t.get('steps', '-'):,} | "
            f"{f'{seen / 1e9:.2f} G' if seen else '-'} | {f'{wall / 3600:.2f} h' if wall else '-'} | {hw} | "
            f"{t.get('init_from') or '-'} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", type=Path, default=REPO / "engines")
    args = p.parse_args(argv)
    cards = load_cards(args.engines)
    out = ["### Clean input (PSNR / SSIM, dB)", "", *clean_table(cards), ""]
    for ds in ("Set14", "Set5"):
        out += [f"### Compressed input, {ds} (PSNR, dB)", "", *compressed_table(cards, ds), ""]
    out += ["### Training", "", *training_table(cards)]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
