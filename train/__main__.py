"""``python -m train --config configs/train/espcn_x2.yaml [--resume] [--out runs/espcn_x2]``."""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from streamsr.hashing import file_sha256
from train.cli import report_errors
from train.config import REPO_ROOT, load_config
from train.loop import finished_run, train
from train.sessions import hardware


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train", description="Train a streamsr model.")
    p.add_argument("--config", required=True, help="YAML training config")
    p.add_argument("--out", help="run folder (default runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--threads", type=int, help="torch threads (overrides the config)")
    p.add_argument("--stop-after", type=int, help="stop after this many total steps")
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much wall time")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return report_errors(lambda: run(args), args.debug)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    out = Path(args.out) if args.out else REPO_ROOT / "runs" / cfg.run_name
    out.mkdir(parents=True, exist_ok=True)
    if args.resume and finished_run(out, cfg):
        # nothing to train: leave its config, summary and session log as the run wrote them
        logging.getLogger("train").info("%s has finished (%d steps); nothing to resume", out, cfg.schedule.steps)
        return 0
    if Path(args.config).resolve() != (out / "config.yaml").resolve():
        shutil.copyfile(args.config, out / "config.yaml")
    res = train(cfg, out, args.resume, args.threads, args.stop_after, progress=not args.no_progress,
                time_limit_s=None if args.max_minutes is None else args.max_minutes * 60)
    summary = {
        "config": str(args.config),
        "config_sha256": file_sha256(args.config),
        "steps": res.step,
        "seed": cfg.seed,
        "wall_time_s": round(res.elapsed_s, 1),
        "device": res.device,
        "threads": res.threads,
        "hardware": hardware(),
        "lr_pixels_seen": res.step * cfg.data.batch_size * cfg.data.patch_size**2,
        "precision": res.precision,
        "val_psnr": res.val_psnr,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logging.getLogger("train").info("done: %s", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
