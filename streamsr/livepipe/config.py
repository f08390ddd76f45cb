"""The YAML file of `streamsr live --config`: cameras, outputs, model and live policy.

Unknown keys are errors (a typo must not silently become a default). ``${VAR}`` in a URL
is read from the environment, so passwords need not live in the file. See
configs/live/example.yaml.

Precedence: the command line wins over this file, and this file wins over the defaults written
in the dataclasses below (the only place defaults live; the command line's are all None).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from streamsr.errors import ConfigError
from streamsr.typed_config import build
from streamsr.sinks.segments import SegmentSettings
from streamsr.sources.live_source import LiveOptions

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class CameraConfig:
    name: str
    url: str
    transport: str | None = None  # overrides live.transport
    push: str | None = None  # this camera's own RTSP re-stream


@dataclass(frozen=True)
class ModelConfig:
    scale: int = 2
    name: str | None = None
    engine: str = "auto"
    precision: str = "auto"  # as the command line: each engine's default (fp32 on the CPU)
    threads: int | None = None


@dataclass(frozen=True)
class PolicyConfig:
    latency_ceiling_ms: float = 500.0
    batch: int = 4
    queue: int = 2


@dataclass(frozen=True)
class OutputsConfig:
    serve: str | None = None
    display: bool = False
    push: str | None = None
    record: str | None = None
    segments: SegmentSettings = SegmentSettings()
    preview_fps: float = 25.0
    allow_hosts: tuple[str, ...] = ()  # Host names the preview answers besides its own address
    token_file: str | None = None  # preview bearer token (else $STREAMSR_PREVIEW_TOKEN)
    basic_auth_file: str | None = None  # preview user:password (else $STREAMSR_PREVIEW_BASIC)
    max_clients: int = 32  # preview connections at once; more get 503
    client_timeout_s: float = 10.0  # preview: a client silent or stalled this long is dropped


@dataclass(frozen=True)
class LiveConfig:
    cameras: tuple[CameraConfig, ...]
    model: ModelConfig = ModelConfig()
    policy: PolicyConfig = PolicyConfig()
    source: LiveOptions = LiveOptions()
    outputs: OutputsConfig = OutputsConfig()
    extra: dict[str, Any] = field(default_factory=dict)


def _strict(cls: type, data: Any, where: str) -> Any:
    """One section, validated by pydantic (streamsr.typed_config): unknown keys and wrong types are errors."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, not {type(data).__name__}")
    return build(cls, data, where)


def expand_env(url: str, where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m[1] not in os.environ:
            raise ConfigError(f"{where} uses ${{{m[1]}}} but that environment variable is not set")
        return os.environ[m[1]]

    return _VAR.sub(sub, url)


def check_camera_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"camera name {name!r}: use letters, digits, '_', '-' or '.' (at most 64)")
    return name


def parse_config(data: Any, origin: str = "config") -> LiveConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping")
    allowed = {"cameras", "model", "live", "outputs"}
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{origin}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(allowed))})")
    cams_raw = data.get("cameras") or []
    if not isinstance(cams_raw, list):
        raise ConfigError(f"{origin}: cameras must be a list")
    cameras = []
    for i, raw in enumerate(cams_raw):
        cam = _strict(CameraConfig, raw, f"cameras[{i}]") if isinstance(raw, dict) else None
        if cam is None:
            raise ConfigError(f"{origin}: cameras[{i}] must be a mapping with name and url")
        cameras.append(CameraConfig(check_camera_name(str(cam.name)), expand_env(str(cam.url), f"cameras[{i}].url"),
                                    cam.transport, expand_env(cam.push, f"cameras[{i}].push") if cam.push else None))
    live = dict(data.get("live") or {})
    if not isinstance(data.get("live") or {}, dict):
        raise ConfigError(f"{origin}: live must be a mapping")
    policy_keys = {f.name for f in fields(PolicyConfig)}
    policy = _strict(PolicyConfig, {k: v for k, v in live.items() if k in policy_keys}, "live")
    source = _strict(LiveOptions, {k: v for k, v in live.items() if k not in policy_keys}, "live")
    outputs_raw = dict(data.get("outputs") or {})
    record = outputs_raw.pop("record", None)
    segments = SegmentSettings()
    record_dir = None
    if isinstance(record, dict):
        record = dict(record)
        if "dir" not in record:
            raise ConfigError(f"{origin}: outputs.record needs a dir")
        record_dir = str(record.pop("dir"))
        segments = _strict(SegmentSettings, record, "outputs.record")
    elif record is not None:
        record_dir = str(record)
    outputs = _strict(OutputsConfig, outputs_raw, "outputs")
    hosts = outputs.allow_hosts
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f"{origin}: outputs.allow_hosts must be a list of host names")
    outputs = replace(outputs, display=bool(outputs.display), allow_hosts=tuple(hosts),
                      push=expand_env(outputs.push, "outputs.push") if outputs.push else None,
                      record=record_dir, segments=segments)
    model = _strict(ModelConfig, data.get("model"), "model")
    return LiveConfig(cameras=tuple(cameras), model=model, policy=policy, source=source, outputs=outputs)


def load_config(path: Path) -> LiveConfig:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config not found: {path}") from None
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"unreadable config {path}: {e}") from None
    return parse_config(data, str(path))
