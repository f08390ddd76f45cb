"""Where a batch job's outputs go: which files are (re)done, their work folders, and moving a
finished output to its target."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path
from typing import Literal

from streamsr import zoo
from streamsr.batch.journal import same_content
from streamsr.enhance import EnhanceOptions
from streamsr.input_kind import CLEAN_H264_QP
from streamsr.sinks.atomic import commit, discard, temporary_path

Verdict = Literal["do", "skip", "refuse"]


def options_fingerprint(options: EnhanceOptions, suffix_rule: str) -> dict[str, object]:
    """What decides an output's content: a done file made with other options is redone.
    (The engine, threads and batch size do not: the engines agree within a grey level.)
    Without a model each file gets the clean or the compressed default (input_kind.py): both
    cards and the rule's threshold are part of what decides it."""
    if options.model is None:
        cards = [zoo.resolve_model(zoo.default_model(options.scale, kind), options.scale)
                 for kind in ("clean", "compressed")]
        model: object = "by input: " + " / ".join(c.name for c in cards)
        onnx: object = [c.onnx_sha256 for c in cards] + [CLEAN_H264_QP.get(options.scale)]
    else:
        card = zoo.resolve_model(options.model, options.scale)
        model, onnx = card.name, card.onnx_sha256
    e = options.encode
    return {"model": model, "onnx": onnx, "scale": options.scale, "precision": options.precision,
            "codec": e.codec, "encoder": options.encoder, "preset": e.preset, "crf": e.crf, "compare": options.compare, "outputs": suffix_rule}


def verdict(record: dict | None, target: Path, src: Path, options: dict[str, object], force: bool) -> tuple[Verdict, str]:
    """What to do with one input, from its journal record: ("skip", why), ("refuse", error) or
    ("do", why it is done again, empty for a new file)."""
    if force:
        return "do", ""
    if record is None:
        if target.exists() or target.is_symlink():
            return "refuse", f"output exists and was not written by this job: {target} (--force replaces it)"
        return "do", ""
    state = record.get("state")
    if state == "failed":
        return "do", "failed earlier"
    if state != "done":
        return "do", "interrupted earlier"
    if record.get("options") != options:
        return "do", "options changed"
    if not target.exists():
        return "do", "output missing"
    if not same_content(record, src):
        return "do", "input changed"
    return "skip", "done earlier"


def work_dir(work_root: Path, key: str) -> Path:
    """The folder where one input's outputs and segments are written before they are placed."""
    return work_root / hashlib.sha256(key.encode()).hexdigest()[:16]


def clean_work(work_root: Path, wanted: dict[Path, set[str]]) -> None:
    """Remove everything in ``work_root`` but the files named in ``wanted`` (folder -> names)."""
    if not work_root.exists():
        return
    for folder in work_root.iterdir():
        names = wanted.get(folder)
        if names is None:
            shutil.rmtree(folder, ignore_errors=True) if folder.is_dir() else discard(folder)
            continue
        for entry in folder.iterdir():
            if entry.name not in names:
                discard(entry)


def place(work_file: Path, target: Path) -> None:
    """Move a finished output to its target: a rename, or a copy and rename across file systems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(work_file, target)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        temp = temporary_path(target)
        try:
            shutil.copyfile(work_file, temp)
        except BaseException:
            discard(temp)
            raise
        commit(temp, target)
        work_file.unlink()
