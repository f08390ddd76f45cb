"""Stream URLs without their secrets: whatever is printed or logged goes through ``mask_url``.

    >>> mask_url("rtsp://admin:hunter2@10.0.0.5:554/stream1")
    'rtsp://admin:***@10.0.0.5:554/stream1'
    >>> mask_url("rtsp://admin:p@ss@10.0.0.5/s")   # the user info ends at the *last* '@'
    'rtsp://admin:***@10.0.0.5/s'

Three layers, from the most to the least structural:

* URLs in text: ``scheme://user:password@host`` (the user info runs to the last ``@`` of the
  authority, as RFC 3986 and FFmpeg's ``av_url_split`` read it), secret-looking query values
  (``?token=``, ``&password=``, ``access_token=``...) and ``Authorization:`` header values;
* secrets registered with ``register_secrets(url)`` (every camera and push URL is): each one
  is also masked wherever it appears on its own, raw, percent-decoded or inside a basic-auth
  base64 string, so a library message that quotes a password without its URL is caught too;
* ``MaskingFilter``: the CLI puts it on its log handlers, so every record (FFmpeg's own
  messages forwarded by PyAV included) is masked before it is written.
"""
from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
# A URL token inside free text: up to whitespace or a quote (messages quote URLs as '...').
_URL = re.compile(rf"(?P<scheme>{_SCHEME})(?P<rest>(?:(?!{_SCHEME})[^\s'\"<>])*)")
_SECRET_KEY = r"[^=&#;?\s'\"]*(?:pass|pwd|token|auth|key|secret|sig|session|cred)[^=&#;?\s'\"]*"
# token=..., password=..., access_token=... and the like in query strings
_SECRET_QUERY = re.compile(rf"(?i)(?P<key>[?&;]{_SECRET_KEY}=)[^&#;\s'\"]*")
_AUTH_HEADER = re.compile(r"(?i)(?P<key>(?:proxy-)?authorization:\s*(?:[A-Za-z-]+\s+)?)[^\s'\"]+")
_MIN_LITERAL = 6  # registered secrets shorter than this are only masked inside URLs

_registered: set[str] = set()
_registry_lock = threading.Lock()


def mask_url(url: str) -> str:
    """The URL with its password (and secret-looking query values) replaced by ``***``."""
    return mask_text(str(url))


def mask_text(text: str) -> str:
    """Every URL password, secret query value, auth header and registered secret in ``text`` masked."""
    text = _URL.sub(_mask_one_url, str(text))
    text = _SECRET_QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['key']}{MASK}", text)
    return _mask_registered(text)


def _mask_one_url(m: re.Match[str]) -> str:
    rest = m["rest"]
    end = _userinfo_end(rest)
    if end is None:
        return m[0]
    user, sep, _password = rest[:end].partition(":")
    if not sep:
        return m[0]  # a user name alone is not a secret
    return f"{m['scheme']}{user}:{MASK}{rest[end:]}"


def _userinfo_end(rest: str) -> int | None:
    """Index of the '@' that ends the user info of ``rest`` (the URL after ``scheme://``), or None.

    The authority ends at the first '/', and the user info at its last '@' (so '@' and ':' may
    appear in a password). A password with a raw '/' is not a valid URL, but it is a secret all
    the same: when the authority holds ``user:x`` where ``x`` is not a port number, the user
    info runs to the last '@' of the whole token instead.
    """
    authority = rest.split("/", 1)[0]
    at = authority.rfind("@")
    if at >= 0:
        return at
    if authority.startswith("[") or ":" not in authority:
        return None
    after_colon = authority.split(":", 1)[1]
    if after_colon.isdigit() or after_colon == "":
        return None  # host:port
    at = rest.rfind("@")
    return at if at > len(authority) else None


def _mask_registered(text: str) -> str:
    with _registry_lock:
        secrets = sorted(_registered, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def register_secrets(url: str) -> None:
    """Remember the secrets of ``url`` so that they are masked wherever they appear alone."""
    found = url_secrets(url)
    parts = _split(url)
    if parts is not None and parts[1] is not None:
        user, password = parts
        for u, p in ((user, password), (unquote(user), unquote(password))):
            found.append(base64.b64encode(f"{u}:{p}".encode()).decode())
    with _registry_lock:
        for s in found:
            if len(s) >= _MIN_LITERAL:
                _registered.add(s)


def register_secret(secret: str) -> None:
    """Remember one secret (a preview token or password) so that it is masked wherever it appears."""
    if len(secret) >= _MIN_LITERAL:
        with _registry_lock:
            _registered.add(secret)


def clear_registered_secrets() -> None:
    with _registry_lock:
        _registered.clear()


def _split(url: str) -> tuple[str, str | None] | None:
    """(user, password) of a URL, reading the user info to its last '@'; None without one."""
    m = _URL.match(str(url))
    if not m:
        return None
    end = _userinfo_end(m["rest"])
    if end is None:
        return None
    user, sep, password = m["rest"][:end].partition(":")
    return user, (password if sep else None)


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL (its password, secret query values), raw and percent-decoded,
    for leak checks and for ``register_secrets``."""
    out: list[str] = []
    parts = _split(url)
    if parts is not None and parts[1]:
        out += [parts[1], unquote(parts[1])]
    try:
        query = urlsplit(str(url)).query
    except ValueError:
        query = ""
    for key, value in parse_qsl(query, keep_blank_values=False):
        if value and _SECRET_QUERY.search(f"?{key}=x"):
            raw = re.search(rf"[?&;]{re.escape(key)}=([^&#;\s]*)", str(url))
            out += [value] + ([raw[1]] if raw else [])
    return list(dict.fromkeys(s for s in out if s))


def is_stream_url(text: str) -> bool:
    return bool(re.match(r"^(rtsp|rtsps|rtmp|http|https|srt|udp|tcp)://", str(text), re.I))


class MaskingFilter(logging.Filter):
    """A handler filter that masks secrets in every record's message (and its traceback text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: let logging report it
            return True
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Put a ``MaskingFilter`` on every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
