"""Find shipped models by name: ``engines/<arch>_x<scale>.json`` beside its ONNX file."""
from __future__ import annotations

import os
from pathlib import Path

from streamsr.errors import ModelError
from streamsr.types import ModelCard

DEFAULT_MODEL = "espcn"


def engines_dirs() -> list[Path]:
    """Where models are looked for, first match wins.

    $STREAMSR_ENGINES, then the repository's ``engines/`` (source checkout or editable
    install), then the copy bundled inside an installed wheel (``streamsr/_engines``).
    """
    here = Path(__file__).resolve().parent
    dirs = []
    if env := os.environ.get("STREAMSR_ENGINES"):
        dirs.append(Path(env))
    dirs += [here.parent / "engines", here / "_engines"]
    return [d for d in dirs if d.is_dir()]


def available_models() -> list[str]:
    names = set()
    for d in engines_dirs():
        names.update(p.stem for p in d.glob("*.json"))
    return sorted(names)


def resolve_model(model: str | None, scale: int) -> ModelCard:
    """A card from a name (``espcn``, ``espcn_x2``) or a path to a ``.json`` card or ``.onnx``."""
    model = model or DEFAULT_MODEL
    path = Path(model)
    if path.suffix in (".json", ".onnx"):
        card_path = path.with_suffix(".json")
        if not path.exists():
            raise ModelError(f"model file not found: {path}")
        card = ModelCard.load(card_path)
    else:
        stem = model if "_x" in model else f"{model}_x{scale}"
        card = None
        for d in engines_dirs():
            if (d / f"{stem}.json").exists():
                card = ModelCard.load(d / f"{stem}.json")
                break
        if card is None:
            known = ", ".join(available_models()) or "none found"
            raise ModelError(f"unknown model {stem!r} (known: {known})")
    if card.scale != scale:
        raise ModelError(f"model {card.name} upscales x{card.scale}, but --scale {scale} was asked")
    if not card.file(card.onnx).exists():
        raise ModelError(f"model {card.name}: ONNX file {card.file(card.onnx)} is missing")
    return card
