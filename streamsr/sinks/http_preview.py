"""The HTTP preview: one small page with each camera's enhanced MJPEG stream, FPS and latency.

Routes (GET/HEAD only; everything else is 404 or 405):
    /                       the page
    /stream/<camera>.mjpg   multipart/x-mixed-replace JPEG stream of the enhanced frames
    /stats.json             FPS, latency and state per camera (the page polls it)
    /metrics                Prometheus text

It binds to 127.0.0.1 unless told otherwise, serves no files and never shows a stream URL.
JPEGs are encoded lazily by the client threads, once per frame however many clients watch,
and not at all when nobody does.
"""
from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import cv2
import numpy as np

from streamsr.errors import ConfigError, OutputError
from streamsr.livepipe.metrics import CameraMetrics, prometheus_text
from streamsr.sinks.av_sink import pad_to_even
from streamsr.types import Frame

log = logging.getLogger(__name__)

BOUNDARY = "streamsrframe"


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


def planes_to_bgr420(planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """(Y, Cb, Cr) 4:2:0 planes (limited range, BT.601) to a BGR picture."""
    y, cb, cr = pad_to_even(planes)
    h, w = y.shape
    if cb.shape == y.shape:  # 4:4:4
        return cv2.cvtColor(np.dstack([y, cr, cb]), cv2.COLOR_YCrCb2BGR)
    q = (h // 2) * (w // 2)
    flat = np.empty(h * w + 2 * q, np.uint8)
    flat[: h * w] = y.reshape(-1)
    flat[h * w: h * w + q] = cb[: h // 2, : w // 2].reshape(-1)
    flat[h * w + q:] = cr[: h // 2, : w // 2].reshape(-1)
    return cv2.cvtColor(flat.reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_I420)


class _Slot:
    """The newest frame of one camera and its JPEG, encoded at most once."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seq = 0
        self.frame: Frame | None = None
        self.jpeg: bytes | None = None
        self.jpeg_seq = -1

    def jpeg_for(self, quality: int) -> tuple[int, bytes | None]:
        with self.cond:
            seq, frame = self.seq, self.frame
            if seq == self.jpeg_seq:
                return seq, self.jpeg
        if frame is None:
            return seq, None
        ok, data = cv2.imencode(".jpg", planes_to_bgr420(frame.planes), [cv2.IMWRITE_JPEG_QUALITY, quality])
        with self.cond:
            if ok and seq > self.jpeg_seq:
                self.jpeg, self.jpeg_seq = data.tobytes(), seq
            return seq, self.jpeg


class PreviewServer:
    """A LiveOutput that serves the newest enhanced frame of each camera to browsers."""

    def __init__(
        self,
        cameras: Sequence[str],
        metrics: Callable[[], Sequence[CameraMetrics]],
        host: str = "127.0.0.1",
        port: int = 8080,
        max_fps: float = 25.0,
        quality: int = 80,
    ) -> None:
        self.slots = {name: _Slot() for name in cameras}
        self.metrics = metrics
        self.max_fps = max_fps
        self.quality = quality
        self._closing = threading.Event()
        handler = _handler_for(self)
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise OutputError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="streamsr-preview", daemon=True)
        self._thread.start()
        log.info("preview on http://%s:%d/", self.host, self.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}/"

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
        out = {}
        for m in self.metrics():
            s = m.snapshot()
            out[m.name] = {k: s[k] for k in ("connected", "fps_in", "fps_out", "latency_s", "dropped",
                                             "reconnects", "outages", "uptime_s", "frames_out")}
        return json.dumps(out).encode()


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


def _handler_for(server: PreviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
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

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, server.page(), "text/html; charset=utf-8")
            elif path == "/metrics":
                self._send(200, prometheus_text(server.metrics()).encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/stats.json":
                self._send(200, server.stats(), "application/json")
            elif path.startswith("/stream/") and path.endswith(".mjpg"):
                name = unquote(path[len("/stream/"):-len(".mjpg")])
                if name not in server.slots:
                    self._send(404, b"no such camera\n", "text/plain")
                else:
                    self._stream(server.slots[name])
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
            min_gap = 1.0 / server.max_fps if server.max_fps > 0 else 0.0
            sent_at = 0.0
            while not server._closing.is_set():
                with slot.cond:
                    if slot.seq == last:
                        slot.cond.wait(1.0)
                    if slot.seq == last:
                        continue
                gap = sent_at + min_gap - time.monotonic()
                if gap > 0:
                    time.sleep(gap)
                last, jpeg = slot.jpeg_for(server.quality)
                if jpeg is None:
                    continue
                try:
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                                     "\r\n\r\n".encode() + jpeg + b"\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    return
                sent_at = time.monotonic()

    return Handler
