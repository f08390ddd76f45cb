"""Stream URLs without their secrets: whatever is printed or logged goes through ``mask_url``.

    >>> mask_url("rtsp://admin:hunter2@10.0.0.5:554/stream1")
    'rtsp://admin:***@10.0.0.5:554/stream1'
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
# scheme://user:password@  (the password may hold anything but '@', '/' and spaces)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@")
# token=..., password=..., and the like in query strings
_SECRET_QUERY = re.compile(r"(?i)(?P<key>[?&;](?:password|passwd|pwd|pass|token|auth|key|secret|signature|sig)=)[^&#\s]*")


def mask_url(url: str) -> str:
    """The URL with its password (and secret-looking query values) replaced by ``***``."""
    return mask_text(str(url))


def mask_text(text: str) -> str:
    """Every URL password inside free text masked (error messages quote URLs)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['key']}{MASK}", text)


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL (its password, secret query values), for leak checks."""
    out: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    if parts.password:
        out.append(parts.password)
    for key, value in parse_qsl(parts.query):
        if value and _SECRET_QUERY.search(f"?{key}=x"):
            out.append(value)
    return out


def is_stream_url(text: str) -> bool:
    return bool(re.match(r"^(rtsp|rtsps|rtmp|http|https|srt|udp|tcp)://", str(text), re.I))
