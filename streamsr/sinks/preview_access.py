"""Who may talk to the preview server: the Host header check and optional authentication.

* **Host check** (against DNS rebinding). A web page the user visits can make its own domain
  resolve to 127.0.0.1 and then read the preview from the browser, the same origin in the
  browser's eyes. The Host header it sends is still the attacker's domain, so the server answers
  only requests whose Host is an address it is bound to (with its port), ``localhost`` when bound
  to loopback, any IP literal when bound to a wildcard address (0.0.0.0, ::) (a rebinding attack
  needs a name, never an IP literal), or a name the user lists (``--allow-host``).
* **Authentication**: a bearer token and/or basic auth (``user:password``), read from the
  environment (``STREAMSR_PREVIEW_TOKEN``, ``STREAMSR_PREVIEW_BASIC``) or from a file, never
  from the command line (which other local users can read in ``ps``). Compared in constant time.
  It is required when the server binds to anything but loopback.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from streamsr.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_ENV = "STREAMSR_PREVIEW_TOKEN"
BASIC_ENV = "STREAMSR_PREVIEW_BASIC"
REALM = "streamsr"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; a wildcard or any other name is not."""
    if host.lower().rstrip(".") == "localhost":
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def _split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` or ``[v6][:port]`` to (lower-case host without brackets, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""  # a bare IPv6 address, or no port
    host = host.rstrip(".")
    if port and not port.isdigit():
        raise ValueError(f"bad port in {value!r}")
    return host, (int(port) if port else None)


class HostCheck:
    """Which ``Host`` header values the server answers (everything else gets 421)."""

    def __init__(self, bound_host: str, port: int, extra: Iterable[str] = ()) -> None:
        self.port = port
        self.any_ip = False
        self.allowed: set[tuple[str, int]] = set()
        bound = bound_host.strip("[]").lower()
        ip = _ip(bound)
        if ip is not None and ip.is_unspecified:
            self.any_ip = True  # 0.0.0.0 or ::: every address of the machine
            self.allowed.add(("localhost", port))
        else:
            self.allowed.add((bound, port))
            if is_loopback(bound):
                self.allowed |= {("localhost", port), ("127.0.0.1", port)}
        for name in extra:
            try:
                host, p = _split_host(str(name))
            except ValueError:
                raise ConfigError(f"allowed host {name!r}: use NAME or NAME:PORT") from None
            if not host:
                raise ConfigError(f"allowed host {name!r} is empty")
            self.allowed.add((host, p or port))

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        try:
            host, port = _split_host(header)
        except ValueError:
            return False
        port = port if port is not None else 80
        if (host, port) in self.allowed:
            return True
        return self.any_ip and port == self.port and _ip(host) is not None


@dataclass(frozen=True)
class Credentials:
    """What a client must send: ``Authorization: Bearer <token>`` or basic auth ``user:password``."""

    token: str | None = None
    basic: str | None = None  # "user:password"

    def __post_init__(self) -> None:
        if self.basic is not None and ":" not in self.basic:
            raise ConfigError("preview basic auth must be user:password")

    @property
    def required(self) -> bool:
        return self.token is not None or self.basic is not None

    def allows(self, header: str | None) -> bool:
        """Whether an Authorization header value matches; constant time in the secret."""
        if not self.required:
            return True
        scheme, _, value = (header or "").strip().partition(" ")
        value = value.strip()
        ok = False
        if self.token is not None and scheme.lower() == "bearer":
            ok = hmac.compare_digest(value.encode(), self.token.encode())
        elif self.basic is not None and scheme.lower() == "basic":
            try:
                given = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                given = b""
            ok = hmac.compare_digest(given, self.basic.encode())
        return ok

    def challenge(self) -> str:
        if self.basic is not None:
            return f'Basic realm="{REALM}", charset="UTF-8"'
        return f'Bearer realm="{REALM}"'


def _read_secret(path: str | Path, what: str) -> str:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the {what} file {p}: {e}") from None
    if mode & 0o077:
        log.warning("%s file %s can be read by other users (chmod 600 it)", what, p)
    lines = text.splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ConfigError(f"the {what} file {p} is empty")
    return secret


def load_credentials(token_file: str | Path | None = None, basic_file: str | Path | None = None,
                     env: Mapping[str, str] | None = None) -> Credentials:
    """Credentials from files (first line each) or, failing those, the environment."""
    env = os.environ if env is None else env
    token = _read_secret(token_file, "preview token") if token_file else (env.get(TOKEN_ENV) or None)
    basic = _read_secret(basic_file, "preview basic-auth") if basic_file else (env.get(BASIC_ENV) or None)
    if token is not None and not token.strip():
        token = None
    return Credentials(token=token.strip() if token else None, basic=basic)


def check_exposure(host: str, credentials: Credentials) -> None:
    """Refuse to serve beyond loopback without authentication."""
    if not is_loopback(host) and not credentials.required:
        raise ConfigError(
            f"the preview on {host} would be reachable from other machines without a password: set "
            f"{TOKEN_ENV} or {BASIC_ENV}=user:password (or --token-file / --basic-auth-file), or serve on 127.0.0.1")
