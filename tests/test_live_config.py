"""`streamsr live` precedence, option by option: the command line wins over the YAML file, and
the file wins over the defaults. Every option that exists in both is in the table below, and a
check fails when a new one is added to the command line without a row."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamsr.commands.cli import build_parser
from streamsr.commands.live import build_config
from streamsr.livepipe.config import LiveConfig

Get = Callable[[LiveConfig], Any]

# dest, command line, YAML section and key, YAML value, value the command line gives, accessor
ROWS: list[tuple[str, list[str], tuple[str, ...], Any, Any, Get]] = [
    ("scale", ["--scale", "2"], ("model", "scale"), 3, 2, lambda c: c.model.scale),
    ("model", ["--model", "cli.json"], ("model", "name"), "yaml.json", "cli.json", lambda c: c.model.name),
    ("engine", ["--engine", "onnxruntime"], ("model", "engine"), "openvino", "onnxruntime", lambda c: c.model.engine),
    ("precision", ["--precision", "fp32"], ("model", "precision"), "bf16", "fp32", lambda c: c.model.precision),
    ("threads", ["--threads", "3"], ("model", "threads"), 1, 3, lambda c: c.model.threads),
    ("batch", ["--batch", "2"], ("live", "batch"), 6, 2, lambda c: c.policy.batch),
    ("latency_ceiling", ["--latency-ceiling", "250"], ("live", "latency_ceiling_ms"), 900, 250.0,
     lambda c: c.policy.latency_ceiling_ms),
    ("queue", ["--queue", "3"], ("live", "queue"), 5, 3, lambda c: c.policy.queue),
    ("transport", ["--transport", "tcp"], ("live", "transport"), "udp", "tcp", lambda c: c.source.transport),
    ("open_timeout", ["--open-timeout", "4"], ("live", "open_timeout_s"), 20, 4.0, lambda c: c.source.open_timeout_s),
    ("read_timeout", ["--read-timeout", "3"], ("live", "read_timeout_s"), 9, 3.0, lambda c: c.source.read_timeout_s),
    ("stall", ["--stall", "2"], ("live", "stall_s"), 8, 2.0, lambda c: c.source.stall_s),
    ("backoff_max", ["--backoff-max", "1"], ("live", "backoff_max_s"), 7, 1.0, lambda c: c.source.backoff_max_s),
    ("max_retries", ["--max-retries", "2"], ("live", "max_retries"), 9, 2, lambda c: c.source.max_retries),
    ("realtime", ["--realtime"], ("live", "realtime"), False, True, lambda c: c.source.realtime),
    ("loop", ["--no-loop"], ("live", "loop"), True, False, lambda c: c.source.loop),
    ("serve", ["--serve", "127.0.0.1:9001"], ("outputs", "serve"), "127.0.0.1:9002", "127.0.0.1:9001",
     lambda c: c.outputs.serve),
    ("allow_hosts", ["--allow-host", "a.lan", "--allow-host", "b.lan"], ("outputs", "allow_hosts"), ["y.lan"],
     ("a.lan", "b.lan"), lambda c: c.outputs.allow_hosts),
    ("token_file", ["--token-file", "cli.token"], ("outputs", "token_file"), "yaml.token", "cli.token",
     lambda c: c.outputs.token_file),
    ("basic_auth_file", ["--basic-auth-file", "cli.auth"], ("outputs", "basic_auth_file"), "yaml.auth", "cli.auth",
     lambda c: c.outputs.basic_auth_file),
    ("display", ["--no-display"], ("outputs", "display"), True, False, lambda c: c.outputs.display),
    ("output", ["-o", "rtsp://cli/{camera}"], ("outputs", "push"), "rtsp://yaml/{camera}", "rtsp://cli/{camera}",
     lambda c: c.outputs.push),
    ("record", ["--record", "rec_cli"], ("outputs", "record", "dir"), "rec_yaml", "rec_cli",
     lambda c: c.outputs.record),
    ("segment", ["--segment", "30"], ("outputs", "record", "segment_s"), 60, 30.0,
     lambda c: c.outputs.segments.segment_s),
    ("segment_format", ["--segment-format", "ts"], ("outputs", "record", "format"), "fmp4", "ts",
     lambda c: c.outputs.segments.format),
]
CLI_ONLY = {"help", "sources", "config", "duration", "json", "max_pixels"}


def _live_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["live"]


def _yaml(tmp_path: Path, section: tuple[str, ...], value: Any) -> Path:
    data: dict[str, Any] = {"cameras": [{"name": "gate", "url": "rtsp://127.0.0.1/s"}]}
    node = data
    for key in section[:-1]:
        node = node.setdefault(key, {})
    node[section[-1]] = value
    if section[:2] == ("outputs", "record") and "dir" not in node:
        node["dir"] = "rec_yaml"
    path = tmp_path / f"{'_'.join(section)}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _config(*argv: str) -> LiveConfig:
    return build_config(build_parser().parse_args(["live", *argv]))


def test_every_shared_option_has_a_row() -> None:
    dests = {a.dest for a in _live_parser()._actions} - CLI_ONLY
    assert dests == {row[0] for row in ROWS}


@pytest.mark.parametrize("dest, cli, section, yaml_value, cli_value, get", ROWS, ids=[r[0] for r in ROWS])
def test_command_line_over_file_over_defaults(tmp_path: Path, dest: str, cli: list[str], section: tuple[str, ...],
                                              yaml_value: Any, cli_value: Any, get: Get) -> None:
    default = get(_config("rtsp://127.0.0.1/s"))
    path = _yaml(tmp_path, section, yaml_value)
    from_file = get(_config("--config", str(path)))
    expected_file = tuple(yaml_value) if isinstance(yaml_value, list) else yaml_value
    assert from_file == expected_file != default, "the file must win over the defaults"
    assert get(_config("--config", str(path), *cli)) == cli_value, "the command line must win over the file"
    assert get(_config("rtsp://127.0.0.1/s", *cli)) == cli_value


def test_defaults_are_the_same_with_and_without_a_file(tmp_path: Path) -> None:
    """A file that sets nothing but a camera changes nothing else (e.g. precision stays auto)."""
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump({"cameras": [{"name": "gate", "url": "rtsp://127.0.0.1/s"}]}))
    with_file, without = _config("--config", str(path)), _config("gate=rtsp://127.0.0.1/s")
    assert with_file == without
    assert without.model.precision == "auto" and without.model.scale == 2


@pytest.mark.parametrize(
    "section, message",
    [
        ({"outputs": {"max_clients": "abc"}}, r"^outputs\.max_clients: input should be a valid integer, got 'abc'$"),
        ({"live": {"batch": "4"}}, r"^live\.batch: input should be a valid integer, got '4'$"),  # was accepted as 4
        ({"live": {"transport": "sctp"}}, r"^live: .*transport must be tcp or udp"),
        ({"outputs": {"record": {"dir": "/tmp", "crf": "x"}}}, r"^outputs\.record\.crf: .*integer"),
        ({"outputs": {"display": "yes"}}, r"^outputs\.display: input should be a valid boolean"),
        ({"model": {"scale": 2.5}}, r"^model\.scale: input should be a valid integer"),
    ],
)
def test_wrong_types_are_one_named_error(section: dict, message: str) -> None:
    from streamsr.errors import ConfigError
    from streamsr.livepipe.config import parse_config

    data = {"cameras": [{"name": "a", "url": "rtsp://cam/"}], **section}
    with pytest.raises(ConfigError, match=message):
        parse_config(data)
