"""The HTTP preview: one small page with each camera's enhanced MJPEG stream, FPS and latency.

Routes (GET/HEAD only; everything else is 404 or 405):
    /                       the page
    /stream/<camera>.mjpg   multipart/x-mixed-replace JPEG stream of the enhanced frames
    /stats.json             FPS, latency and state per camera (the page polls it)
    /metrics                Prometheus text

It binds to 127.0.0.1 unless told otherwise, serves no files and never shows a stream URL.
Requests whose Host header is not one the server answers to get 421 (DNS rebinding), and with
credentials set every route needs them (401); serving beyond loopback requires credentials
(``streamsr.sinks.preview_access``). Every connection has a timeout, and connections beyond
``max_clients`` get 503. JPEGs are encoded by the client threads, once per frame however many
clients watch (the first one encodes, the others wait for it), and not at all when nobody does.
"""
from __future__ import annotations

import html
import json
import logging
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote

import cv2
from prometheus_client import CONTENT_TYPE_LATEST

from streamsr.colour import ycbcr_to_bgr
from streamsr.errors import ConfigError, OutputError
from streamsr.sinks.preview_access import Credentials, HostCheck, check_exposure
from streamsr.types import Frame

log = logging.getLogger(__name__)

BOUNDARY = "streamsrframe"
MAX_CLIENTS = 32
TIMEOUT_S = 10.0


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (then 127.0.0.1)."""
    host, _, port = str(text).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--serve wants HOST:PORT or PORT, not {text!r}") from None
    if not 0 <= number < 65536:
        raise ConfigError(f"port out of range: {number}")
    return host, number


def encode_jpeg(frame: Frame, quality: int) -> bytes | None:
    bgr = ycbcr_to_bgr(frame.planes, frame.colour)  # in the frame's own matrix and range
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else None


class _Slot:
    """The newest frame of one camera and its JPEG, encoded at most once per frame."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seq = 0
        self.frame: Frame | None = None
        self.jpeg: bytes | None = None
        self.jpeg_seq = -1
        self.encodes = 0
        self._encoding = threading.Lock()  # one encoder at a time; the other viewers wait and reuse

    def jpeg_for(self, quality: int) -> tuple[int, bytes | None]:
        """(sequence number, JPEG) of the newest frame, encoding it only if nobody has yet."""
        with self.cond:
            if self.seq == self.jpeg_seq or self.frame is None:
                return self.seq, self.jpeg
        with self._encoding:
            with self.cond:
                seq, frame = self.seq, self.frame
                if self.jpeg_seq >= seq:  # another viewer encoded it while this one waited
                    return self.jpeg_seq, self.jpeg
            data = encode_jpeg(frame, quality)  # type: ignore[arg-type]
            with self.cond:
                self.encodes += 1
                if data is not None:
                    self.jpeg, self.jpeg_seq = data, seq
                return seq, self.jpeg


class _BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most ``max_clients`` connections at once (503 beyond)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_clients: int) -> None:
        if max_clients < 1:
            raise ConfigError(f"max_clients must be at least 1, not {max_clients}")
        self._slots = threading.BoundedSemaphore(max_clients)
        self.refused = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        body = b"too many connections\n"
        try:
            request.settimeout(0.2)
            request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
                            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 0.2  # drain the request a moment, so closing does not reset
            while time.monotonic() < deadline and request.recv(4096):
                pass
        except OSError:
            pass
        finally:
            request.close()


class Status(Protocol):
    """What the page shows besides pictures; the live layer provides it (livepipe.metrics.LiveStatus)."""

    def prometheus(self) -> bytes: ...

    def stats(self) -> dict[str, dict[str, Any]]: ...


class PreviewServer:
    """A LiveOutput that serves the newest enhanced frame of each camera to browsers."""

    label = "preview"

    def __init__(
        self,
        cameras: Sequence[str],
        status: Status,
        host: str = "127.0.0.1",
        port: int = 8080,
        max_fps: float = 25.0,
        quality: int = 80,
        *,
        credentials: Credentials | None = None,
        allow_hosts: Iterable[str] = (),
        max_clients: int = MAX_CLIENTS,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.credentials = credentials or Credentials()
        check_exposure(host, self.credentials)
        if timeout_s <= 0:
            raise ConfigError(f"the preview connection timeout must be positive, not {timeout_s}")
        self.slots = {name: _Slot() for name in cameras}
        self.status = status
        self.max_fps = max_fps
        self.quality = quality
        self.timeout_s = timeout_s
        self._closing = threading.Event()
        handler = _handler_for(self)
        try:
            self.httpd = _BoundedServer((host, port), handler, max_clients)
        except OSError as e:
            raise OutputError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
        self.host, self.port = self.httpd.server_address[:2]
        self.hosts = HostCheck(host, self.port, [*allow_hosts, str(self.host)])  # a name binds its address too
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="streamsr-preview", daemon=True)
        self._thread.start()
        log.info("preview on http://%s:%d/", self.host, self.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}/"

    @property
    def jpeg_encodes(self) -> int:
        """JPEG encodes so far, all cameras (at most one per frame written, none without viewers)."""
        return sum(slot.encodes for slot in self.slots.values())

    def write(self, camera: str, frame: Frame) -> None:
        slot = self.slots[camera]
        with slot.cond:
            slot.frame = frame
            slot.seq += 1
            slot.cond.notify_all()

    def close(self) -> None:
        self._closing.set()
        for slot in self.slots.values():
            with slot.cond:
                slot.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # -- content ----------------------------------------------------------------------------
    def page(self) -> bytes:
        tiles = "\n".join(
            f'<figure><img src="/stream/{html.escape(n)}.mjpg" alt="{html.escape(n)}">'
            f'<figcaption><b>{html.escape(n)}</b> <span class="stat" data-camera="{html.escape(n)}">…</span>'
            "</figcaption></figure>"
            for n in self.slots
        )
        return _PAGE.replace("{{TILES}}", tiles).encode()

    def stats(self) -> bytes:
        return json.dumps(self.status.stats()).encode()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamsr live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;background:#111;color:#ddd;margin:1em}
main{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0}
img{max-width:100%;background:#222;display:block} .down{color:#f66}
</style></head><body><h1>streamsr live</h1><main>
{{TILES}}
</main>
<script>
async function poll(){
  try{
    const r = await fetch('/stats.json', {cache:'no-store'}); const s = await r.json();
    for (const el of document.querySelectorAll('.stat')){
      const c = s[el.dataset.camera]; if(!c) continue;
      const ms = v => v == null ? '–' : Math.round(v*1000);
      el.textContent = (c.connected ? '' : 'RECONNECTING · ') + c.fps_out.toFixed(1) + ' fps · latency p50 ' +
        ms(c.latency_s.p50) + ' ms, p95 ' + ms(c.latency_s.p95) + ' ms · reconnects ' + c.reconnects;
      el.className = 'stat' + (c.connected ? '' : ' down');
    }
  }catch(e){}
  setTimeout(poll, 1000);
}
poll();
</script></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    """The preview's routes; ``_handler_for`` binds a subclass to one PreviewServer."""

    preview: PreviewServer
    server_version = "streamsr"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("preview: %s %s", self.address_string(), format % args)

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _common_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy",
                         "default-src 'none'; img-src 'self'; connect-src 'self'; "
                         "script-src 'unsafe-inline'; style-src 'unsafe-inline'")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def _admitted(self) -> bool:
        """Host check (421), then credentials (401)."""
        if not self.preview.hosts.allows(self.headers.get("Host")):
            self.close_connection = True
            self._send(421, b"this server does not answer to that host name\n", "text/plain")
            return False
        if not self.preview.credentials.allows(self.headers.get("Authorization")):
            self.send_response(401)
            self.send_header("WWW-Authenticate", self.preview.credentials.challenge())
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "14")
            self._common_headers()
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(b"unauthorized\r\n")
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802
        if not self._admitted():
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, self.preview.page(), "text/html; charset=utf-8")
        elif path == "/metrics":
            self._send(200, self.preview.status.prometheus(), CONTENT_TYPE_LATEST)
        elif path == "/stats.json":
            self._send(200, self.preview.stats(), "application/json")
        elif path.startswith("/stream/") and path.endswith(".mjpg"):
            name = unquote(path[len("/stream/"):-len(".mjpg")])
            if name not in self.preview.slots:
                self._send(404, b"no such camera\n", "text/plain")
            else:
                self._stream(self.preview.slots[name])
        else:
            self._send(404, b"not found\n", "text/plain")

    def _refuse(self) -> None:
        self._send(405, b"method not allowed\n", "text/plain")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    def _stream(self, slot: _Slot) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self._common_headers()
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        last = 0
        min_gap = 1.0 / self.preview.max_fps if self.preview.max_fps > 0 else 0.0
        sent_at = 0.0
        while not self.preview._closing.is_set():
            with slot.cond:
                if slot.seq == last:
                    slot.cond.wait(1.0)
                if slot.seq == last:
                    continue
            gap = sent_at + min_gap - time.monotonic()
            if gap > 0:
                time.sleep(gap)
            last, jpeg = slot.jpeg_for(self.preview.quality)
            if jpeg is None:
                continue
            try:
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                                 "\r\n\r\n".encode() + jpeg + b"\r\n")
                self.wfile.flush()
            except OSError:  # gone, reset, or stalled past the timeout
                return
            sent_at = time.monotonic()


def _handler_for(server: PreviewServer) -> type[BaseHTTPRequestHandler]:
    # timeout: every socket operation; a silent or stalled client is dropped
    return type("Handler", (_Handler,), {"preview": server, "timeout": server.timeout_s})
