"""The preview server's defences: Host check (DNS rebinding), optional authentication (required
beyond loopback), a timeout on every connection, a cap on connections, and one JPEG encode per
frame however many viewers watch (none without viewers). All on 127.0.0.1."""
from __future__ import annotations

import base64
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from streamsr.errors import ConfigError
from streamsr.livepipe.metrics import CameraMetrics, LiveStatus
from streamsr.sinks import http_preview
from streamsr.sinks.http_preview import PreviewServer
from streamsr.types import Frame

pytestmark = pytest.mark.timeout(60)
ROUTES = ("", "metrics", "stats.json", "stream/cam0.mjpg")


def _frame(index: int) -> Frame:
    y = np.full((48, 64), 40 + index % 100, np.uint8)
    y[:, :32] = 200
    c = np.full((24, 32), 128, np.uint8)
    return Frame(index=index, planes=(y, c, c.copy()), captured_at=time.monotonic())


def _request(port: int, path: str = "", host: str | None = None, auth: str | None = None) -> tuple[int, dict[str, str]]:
    headers = {}
    if host is not None:
        headers["Host"] = host
    if auth is not None:
        headers["Authorization"] = auth
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            if not path.endswith(".mjpg"):
                r.read()
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def _server(**kwargs: object) -> PreviewServer:
    metrics = [CameraMetrics("cam0")]
    host = str(kwargs.pop("host", "127.0.0.1"))
    return PreviewServer(["cam0"], LiveStatus(lambda: metrics), host, 0, **kwargs)  # type: ignore[arg-type]


def test_only_the_bound_host_and_listed_names_are_answered() -> None:
    server = _server(allow_hosts=["cams.example.lan", "proxy.lan:443"])
    p = server.port
    try:
        for host in (f"127.0.0.1:{p}", f"localhost:{p}", f"LOCALHOST:{p}", f"cams.example.lan:{p}", "proxy.lan:443"):
            assert _request(p, host=host)[0] == 200, host
        # a DNS-rebinding page sends its own name; a wrong port or a bare name is not the server either
        for host in (f"evil.example:{p}", f"127.0.0.1.evil.example:{p}", "127.0.0.1:1", "localhost",
                     f"proxy.lan:{p}", f"cams.example.lan.evil:{p}", ""):
            for route in ROUTES:
                assert _request(p, route, host=host)[0] == 421, (host, route)
    finally:
        server.close()


def test_a_wildcard_bind_answers_ip_literals_but_not_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamsr.sinks.preview_access import Credentials

    server = _server(host="0.0.0.0", credentials=Credentials(token="t0ken-Abc"))
    p = server.port
    try:
        auth = "Bearer t0ken-Abc"
        assert _request(p, host=f"127.0.0.1:{p}", auth=auth)[0] == 200
        assert _request(p, host=f"192.168.7.9:{p}", auth=auth)[0] == 200  # the machine's LAN address
        assert _request(p, host=f"[fe80::1]:{p}", auth=auth)[0] == 200
        assert _request(p, host=f"attacker.example:{p}", auth=auth)[0] == 421
    finally:
        server.close()


def test_serving_beyond_loopback_needs_credentials() -> None:
    for host in ("0.0.0.0", "::", "192.0.2.1", "myhost.lan"):
        with pytest.raises(ConfigError, match="without a password"):
            _server(host=host)


def test_cli_refuses_a_public_preview_without_credentials(run_cli, model_args, clip_factory,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMSR_PREVIEW_TOKEN", raising=False)
    monkeypatch.delenv("STREAMSR_PREVIEW_BASIC", raising=False)
    clip = clip_factory("preview_clip.mp4", width=64, height=48, frames=10)
    r = run_cli("live", clip.path, *model_args(), "--serve", "0.0.0.0:0", "--duration", "1")
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert "STREAMSR_PREVIEW_TOKEN" in r.err and "Traceback" not in r.err


def test_bearer_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamsr.sinks.preview_access import load_credentials

    monkeypatch.setenv("STREAMSR_PREVIEW_TOKEN", "s3cret-T0ken")
    monkeypatch.delenv("STREAMSR_PREVIEW_BASIC", raising=False)
    server = _server(credentials=load_credentials())
    p = server.port
    try:
        for route in ROUTES:
            code, headers = _request(p, route)
            assert code == 401 and headers["WWW-Authenticate"].startswith("Bearer"), route
            assert _request(p, route, auth="Bearer s3cret-T0keN")[0] == 401
            assert _request(p, route, auth="Bearer s3cret-T0ken")[0] == 200
    finally:
        server.close()


def test_basic_auth_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamsr.sinks.preview_access import load_credentials

    monkeypatch.delenv("STREAMSR_PREVIEW_TOKEN", raising=False)
    secret = tmp_path / "preview.auth"
    secret.write_text("viewer:pa:ss@word\n")
    secret.chmod(0o600)
    server = _server(credentials=load_credentials(basic_file=secret))
    p = server.port
    good = "Basic " + base64.b64encode(b"viewer:pa:ss@word").decode()
    bad = "Basic " + base64.b64encode(b"viewer:pa:ss@wordX").decode()
    try:
        code, headers = _request(p)
        assert code == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
        assert _request(p, auth=bad)[0] == 401 and _request(p, auth="Basic !!!")[0] == 401
        assert _request(p, auth=good)[0] == 200 and _request(p, "metrics", auth=good)[0] == 200
    finally:
        server.close()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        load_credentials(token_file=empty)
    with pytest.raises(ConfigError, match="not found"):
        load_credentials(token_file=tmp_path / "missing")


def test_credentials_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from streamsr.sinks import preview_access
    from streamsr.sinks.preview_access import Credentials

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest
    monkeypatch.setattr(preview_access.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    creds = Credentials(token="abc123", basic="u:p")
    assert creds.allows("Bearer abc123") and not creds.allows("Bearer abc124")
    assert creds.allows("Basic " + base64.b64encode(b"u:p").decode())
    assert len(calls) == 3


def _raw_connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def test_a_silent_client_is_dropped_after_the_timeout() -> None:
    server = _server(timeout_s=0.5)
    try:
        s = _raw_connect(server.port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finishes its headers
        s.settimeout(4)
        t0 = time.monotonic()
        try:
            data = s.recv(4096)
        except TimeoutError:
            pytest.fail("the server kept a silent client for 4 s")
        assert data == b"" and time.monotonic() - t0 < 3  # closed, well before the 4 s
        s.close()
    finally:
        server.close()


def test_connections_beyond_the_cap_get_503() -> None:
    server = _server(max_clients=2, timeout_s=5)
    p = server.port
    try:
        held = [_raw_connect(p) for _ in range(2)]
        time.sleep(0.2)  # both accepted and being served (waiting for their request)
        code, headers = _request(p, host=f"127.0.0.1:{p}")
        assert code == 503 and headers.get("Retry-After")
        for s in held:
            s.close()
        deadline = time.monotonic() + 3
        while _request(p, host=f"127.0.0.1:{p}")[0] != 200:  # slots come back when clients leave
            assert time.monotonic() < deadline, "the slots were never released"
            time.sleep(0.05)
    finally:
        server.close()


def test_one_jpeg_per_frame_for_many_viewers_and_none_for_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    encodes: list[float] = []
    real = cv2.imencode

    def slow_imencode(*args: object, **kwargs: object):  # slow, so that viewers would overlap
        encodes.append(time.monotonic())
        time.sleep(0.03)
        return real(*args, **kwargs)

    monkeypatch.setattr(http_preview.cv2, "imencode", slow_imencode)
    server = _server(max_fps=100)
    p = server.port
    try:
        for i in range(10):
            server.write("cam0", _frame(i))
        time.sleep(0.2)
        assert encodes == [], "encoded with nobody watching"
        stop = threading.Event()
        received = [0, 0, 0]

        def watch(k: int) -> None:
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/stream/cam0.mjpg", timeout=5) as r:
                while not stop.is_set():
                    received[k] += r.read1(65536).count(b"\xff\xd8")

        viewers = [threading.Thread(target=watch, args=(k,), daemon=True) for k in range(3)]
        for v in viewers:
            v.start()
        time.sleep(0.3)
        written = 0
        for i in range(10, 30):
            server.write("cam0", _frame(i))
            written += 1
            time.sleep(0.06)
        stop.set()
        time.sleep(0.2)
        assert min(received) >= 5, received  # every viewer saw the stream
        assert len(encodes) <= written + 1, (len(encodes), written)  # +1: the frame waiting when they connected
    finally:
        server.close()
