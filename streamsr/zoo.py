"""Find shipped models by name: ``engines/<arch>_x<scale>.json`` beside its ONNX file."""
from __future__ import annotations

import os
from pathlib import Path

from streamsr.errors import ModelError
from streamsr.input_kind import InputKind
from streamsr.types import ModelCard

FALLBACK_MODEL = "espcn"
# The default model is the best on compressed input (what cameras and files give) among the
# shipped models of the fast tier's cost: highest mean Set14 Y-PSNR on these LR inputs, as
# measured in each card's metrics (train.export --lr-degrade), within 2x ESPCN's MACs. For
# clean input (lossless images, high-quality JPEG, lightly quantised H.264: streamsr.input_kind)
# it is the highest clean Set14 Y-PSNR at the same cost.
DEFAULT_RULE_DATASET = "Set14"
DEFAULT_RULE_INPUTS = ("h264:28", "jpeg:40")
FAST_TIER_FACTOR = 2


def espcn_macs(scale: int) -> int:
    """MACs per LR pixel of ESPCN (5x5x64, 3x3x32, 3x3 to scale^2 channels), the cost unit."""
    return 25 * 64 + 9 * 64 * 32 + 9 * 32 * scale * scale


def compressed_score(card: ModelCard) -> float | None:
    """Mean PSNR of the card on the rule's compressed inputs, or None if it was not measured."""
    rows = card.metrics.get("compressed", {}).get(DEFAULT_RULE_DATASET, {})
    if not all(spec in rows for spec in DEFAULT_RULE_INPUTS):
        return None
    return sum(rows[spec]["psnr"] for spec in DEFAULT_RULE_INPUTS) / len(DEFAULT_RULE_INPUTS)


def clean_score(card: ModelCard) -> float | None:
    """The card's PSNR on the rule's dataset with clean LR, or None if it was not measured."""
    return card.metrics.get(DEFAULT_RULE_DATASET, {}).get("psnr")


def default_model(scale: int, input_kind: InputKind = "compressed") -> str:
    """The name ``enhance`` and ``live`` use when no ``--model`` is given (see the rule above):
    ``enhance`` asks for the kind its input is; live cameras and the API's ``Upscaler`` take
    ``compressed``.

    Falls back to ``espcn`` when no card of this scale has the measurements.
    """
    score_of = clean_score if input_kind == "clean" else compressed_score
    budget = FAST_TIER_FACTOR * espcn_macs(scale)
    best: tuple[float, str] | None = None
    for name in available_models():
        try:
            card = _find_card(name)
        except ModelError:
            continue
        score = score_of(card) if card and card.scale == scale and card.macs_per_pixel <= budget else None
        if score is not None and (best is None or (score, name) > best):
            best = (score, name)
    return best[1] if best else f"{FALLBACK_MODEL}_x{scale}"


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


def _find_card(stem: str) -> ModelCard | None:
    for d in engines_dirs():
        if (d / f"{stem}.json").exists():
            return ModelCard.load(d / f"{stem}.json")
    return None


def resolve_model(model: str | None, scale: int) -> ModelCard:
    """A card from a name (``espcn``, ``espcn_x2``) or a path to a ``.json`` card or ``.onnx``."""
    model = model or default_model(scale)
    path = Path(model)
    if path.suffix in (".json", ".onnx"):
        card_path = path.with_suffix(".json")
        if not path.exists():
            raise ModelError(f"model file not found: {path}")
        card = ModelCard.load(card_path)
    else:
        stem = model if "_x" in model else f"{model}_x{scale}"
        card = _find_card(stem)
        if card is None:
            known = ", ".join(available_models()) or "none found"
            raise ModelError(f"unknown model {stem!r} (known: {known})")
    if card.scale != scale:
        raise ModelError(f"model {card.name} upscales x{card.scale}, but --scale {scale} was asked")
    if not card.file(card.onnx).exists():
        raise ModelError(f"model {card.name}: ONNX file {card.file(card.onnx)} is missing")
    return card
