"""Configs (YAML -> frozen dataclasses) validated by pydantic, strictly: one clear line per problem.

The dataclasses stay plain; :func:`strict_config` marks one as closed (unknown keys are
errors), and :func:`build` validates parsed YAML against it in pydantic's strict JSON mode:
``batch: "4"`` is an error, not 4, while YAML lists still fill tuple fields.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from streamsr.errors import ConfigError

T = TypeVar("T")


def strict_config(cls: type[T]) -> type[T]:
    """Class decorator for a config dataclass: unknown keys are errors."""
    cls.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return cls


@lru_cache(maxsize=None)
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def _describe(err: dict[str, Any], where: str) -> str:
    path = ".".join([where, *(str(p) for p in err["loc"])])
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{path}: unknown key"
    got = err.get("input")
    return f"{path}: {err['msg'].lower()}, got {got!r}" if not isinstance(got, dict) else f"{path}: {err['msg'].lower()}"


def build(cls: type[T], data: Any, where: str = "config") -> T:
    """``data`` (parsed YAML) as a ``cls`` instance, or a ConfigError naming every problem.

    A dataclass not marked with :func:`strict_config` is closed here all the same.
    """
    if "__pydantic_config__" not in vars(cls):
        strict_config(cls)
    try:
        payload = json.dumps(data if data is not None else {})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: not plain YAML data ({e})") from None
    try:
        return _adapter(cls).validate_json(payload, strict=True)
    except ValidationError as e:
        raise ConfigError("; ".join(_describe(err, where) for err in e.errors())) from None
