"""``python -m train.queue CONFIG...``: train several configs one after another, resumably.

Each config trains into ``runs/<name>``: a finished run (its checkpoint at the config's last
step) is skipped, a run with a checkpoint resumes, any other starts. Stopping the queue (or the machine) at any point and
running the same command again continues where it stopped. One run at a time, on every core:
two runs side by side share the cores and finish no sooner.
"""
from __future__ import annotations

import argparse
import logging
import sys

from streamsr.errors import StreamSRError
from train.__main__ import main as train_main
from train.config import REPO_ROOT, load_config
from train.loop import CKPT_NAME, finished_run

log = logging.getLogger("train.queue")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.queue", description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="+", help="training configs, in the order to train them")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for path in args.configs:
        try:
            cfg = load_config(path)
        except StreamSRError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
        run = REPO_ROOT / "runs" / cfg.run_name
        if finished_run(run, cfg):
            log.info("%s: finished already (%s), skipped", path, run)
            continue
        resume = (run / CKPT_NAME).exists()
        log.info("%s: %s", path, "resuming" if resume else "starting")
        code = train_main(["--config", path, "--no-progress"] + (["--resume"] if resume else []))
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
