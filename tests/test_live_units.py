"""Live mode without a network server: URL masking, backoff, config, metrics, preview routes."""
from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from streamsr.colour import ycbcr_to_bgr
from streamsr.errors import ConfigError
from streamsr.livepipe.config import parse_config
from streamsr.livepipe.metrics import CameraMetrics, LiveStatus, prometheus_text
from streamsr.sinks.http_preview import PreviewServer, parse_bind
from streamsr.sources.live_source import LiveOptions, SourceState, source_kind
from streamsr.types import Frame
from streamsr.urls import mask_text, mask_url, url_secrets

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("url, masked", [
    ("rtsp://admin:hunter2@10.0.0.5:554/s1", "rtsp://admin:***@10.0.0.5:554/s1"),
    ("rtsp://admin:p%40ss@cam/s", "rtsp://admin:***@cam/s"),
    ("http://u:pw@host/x.mjpg?token=abc&res=hd", "http://u:***@host/x.mjpg?token=***&res=hd"),
    ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
    ("rtsp://onlyuser@cam/s", "rtsp://onlyuser@cam/s"),
    ("/dev/video0", "/dev/video0"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    for secret in url_secrets(url):
        assert secret not in mask_url(url)


def test_mask_text_inside_messages() -> None:
    text = "cannot open 'rtsp://a:b1@h/x' nor rtsps://c:d2@h2:322/y"
    out = mask_text(text)
    assert "b1" not in out and "d2" not in out and out.count("***") == 2


def test_backoff_is_exponential_capped_and_jittered() -> None:
    o = LiveOptions(backoff_initial_s=0.25, backoff_max_s=2.0, jitter=0.25)
    rng = random.Random(1)
    delays = [[o.backoff(a, rng) for _ in range(200)] for a in range(8)]
    means = [float(np.mean(d)) for d in delays]
    assert means[0] == pytest.approx(0.25, rel=0.1) and means[1] == pytest.approx(0.5, rel=0.1)
    assert all(max(d) <= 2.0 * 1.25 + 1e-9 for d in delays) and means[-1] == pytest.approx(2.0, rel=0.1)
    assert len({round(x, 6) for x in delays[3]}) > 100  # jitter: cameras do not retry in lockstep


def test_source_kinds() -> None:
    assert source_kind("rtsp://h/x") == "stream" and source_kind("HTTPS://h/x.mjpg") == "stream"
    assert source_kind("/dev/video2") == "device" and source_kind("0") == "device"
    assert source_kind("clip.mp4") == "file"
    with pytest.raises(ConfigError):
        LiveOptions(transport="sctp")


def test_config_rejects_unknown_keys_and_expands_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PW", "pw1")
    cfg = parse_config({
        "cameras": [{"name": "gate", "url": "rtsp://v:${CAM_PW}@h/s", "transport": "udp"}],
        "live": {"latency_ceiling_ms": 300, "stall_s": 3, "batch": 2},
        "outputs": {"serve": "127.0.0.1:8080", "record": {"dir": "rec", "segment_s": 60, "format": "fmp4"}},
        "model": {"scale": 2, "engine": "onnxruntime"},
    })
    assert cfg.cameras[0].url == "rtsp://v:pw1@h/s" and cfg.cameras[0].transport == "udp"
    assert cfg.policy.latency_ceiling_ms == 300 and cfg.policy.batch == 2 and cfg.source.stall_s == 3
    assert cfg.outputs.record == "rec" and cfg.outputs.segments.format == "fmp4"
    for bad in ({"camera": []}, {"cameras": [{"name": "a", "url": "x", "pasword": "y"}]},
                {"live": {"latency_ceiling": 3}}, {"outputs": {"serve": "1", "colour": 1}},
                {"outputs": {"record": {"dir": "r", "segment": 5}}}, {"model": {"scal": 2}},
                {"cameras": [{"name": "a b", "url": "x"}]}, {"cameras": [{"name": "a", "url": "${NOPE_X}"}]}):
        with pytest.raises(ConfigError):
            parse_config(bad)


def test_example_config_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamsr.livepipe.config import load_config

    for var in ("GATE_PASSWORD", "YARD_PASSWORD"):
        monkeypatch.setenv(var, "x")
    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "live" / "example.yaml")
    assert len(cfg.cameras) >= 2


def test_metrics_percentiles_and_prometheus_text() -> None:
    state = SourceState(connected=True, outages=2, reconnects=2, connected_since=time.monotonic() - 5)
    m = CameraMetrics('gate "1"', state)
    now = time.monotonic()
    for i in range(100):
        m.captured(now)
        m.delivered((i + 1) / 1000, now)
    m.dropped("queue", 3)
    m.dropped("late")
    s = m.snapshot()
    assert s["latency_s"]["p50"] == pytest.approx(0.0505, abs=1e-3)
    assert s["latency_s"]["p99"] == pytest.approx(0.099, abs=2e-3)
    assert s["drop_rate"] == pytest.approx(0.04)
    text = prometheus_text([m])
    assert 'streamsr_frames_dropped_total{camera="gate \\"1\\"",reason="queue"} 3' in text
    assert 'streamsr_latency_seconds{camera="gate \\"1\\"",quantile="0.95"}' in text
    assert 'streamsr_reconnects_total{camera="gate \\"1\\""} 2' in text
    for line in text.splitlines():  # every sample line: name{labels} value
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_parse_bind() -> None:
    assert parse_bind("8080") == ("127.0.0.1", 8080)
    assert parse_bind("0.0.0.0:81") == ("0.0.0.0", 81)
    with pytest.raises(ConfigError):
        parse_bind("localhost:http")


def _frame(value: int, index: int = 0) -> Frame:
    y = np.full((48, 64), value, np.uint8)
    y[:, :32] = 255 - value
    c = np.full((24, 32), 128, np.uint8)
    return Frame(index=index, planes=(y, c, c.copy()), captured_at=time.monotonic())


def _get(url: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_preview_serves_page_streams_metrics_and_nothing_else() -> None:
    metrics = [CameraMetrics("cam0"), CameraMetrics("cam1")]
    server = PreviewServer(["cam0", "cam1"], LiveStatus(lambda: metrics), "127.0.0.1", 0)
    try:
        assert server.host == "127.0.0.1"
        base = server.url
        code, body, headers = _get(base)
        assert code == 200 and b'/stream/cam0.mjpg' in body and b'/stream/cam1.mjpg' in body
        assert headers["X-Content-Type-Options"] == "nosniff"
        code, body, _ = _get(base + "metrics")
        assert code == 200 and b'streamsr_frames_out_total{camera="cam1"} 0' in body
        assert json.loads(_get(base + "stats.json")[1])["cam0"]["connected"] is False
        for path in ("etc/passwd", "../../etc/passwd", "stream/nope.mjpg", "stream/cam0.jpg", "favicon.ico",
                     "static/x.js", "metrics/x"):
            assert _get(base + path)[0] == 404, path
        assert _get(base + "metrics", "POST")[0] == 405
        # the MJPEG stream: frames written after the client connects arrive as JPEGs
        feeder_stop = threading.Event()

        def feed() -> None:
            i = 0
            while not feeder_stop.is_set():
                server.write("cam0", _frame(40 + i % 100, i))
                i += 1
                time.sleep(0.02)

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        import cv2

        with urllib.request.urlopen(base + "stream/cam0.mjpg", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            jpegs = []
            buf = b""
            while len(jpegs) < 3:
                buf += r.read1(65536)
                while b"\xff\xd9" in buf and b"\xff\xd8" in buf:
                    start = buf.index(b"\xff\xd8")
                    end = buf.index(b"\xff\xd9", start) + 2
                    jpegs.append(buf[start:end])
                    buf = buf[end:]
        feeder_stop.set()
        pic = cv2.imdecode(np.frombuffer(jpegs[-1], np.uint8), cv2.IMREAD_GRAYSCALE)
        assert pic.shape == (48, 64)
        assert abs(int(pic[:, :32].mean()) - int(pic[:, 32:].mean())) > 20  # the picture, not a blank
    finally:
        server.close()


def test_planes_to_bgr_matches_opencv_yuv() -> None:
    y = np.full((6, 8), 128, np.uint8)
    c = np.full((3, 4), 128, np.uint8)
    bgr = ycbcr_to_bgr((y, c, c), None)
    assert bgr.shape == (6, 8, 3) and np.all(np.abs(bgr.astype(int) - bgr[0, 0, 0]) <= 1)


def test_display_without_gui_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamsr.sinks import display

    monkeypatch.setattr(display, "gui_available", lambda: False)
    with pytest.raises(ConfigError, match=r"streamsr\[gui\]"):
        display.DisplayWindow(["cam0"], 2)


def test_metrics_parse_with_prometheus_clients_parser_and_keep_large_counters_exact() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    m = CameraMetrics("cam-1")
    m.frames_in = 1_234_567  # a day of 14 FPS: written as 1.23457e+06 by the old exposition
    m.frames_out = 1_234_560
    m.dropped("queue", 7)
    for i in range(20):
        m.delivered(0.010 + i * 0.001, float(i))
    text = LiveStatus(lambda: [m]).prometheus().decode()
    assert "1.23457e+06" not in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("streamsr_frames_in_total", (("camera", "cam-1"),))] == 1_234_567
    assert samples[("streamsr_frames_out_total", (("camera", "cam-1"),))] == 1_234_580  # + the 20 delivered
    assert samples[("streamsr_frames_dropped_total", (("camera", "cam-1"), ("reason", "queue")))] == 7
    assert families["streamsr_latency_seconds"].type == "summary"
    assert samples[("streamsr_latency_seconds_count", (("camera", "cam-1"),))] == 1_234_580
    p95 = samples[("streamsr_latency_seconds", (("camera", "cam-1"), ("quantile", "0.95")))]
    assert 0.027 < p95 < 0.030
    assert families["streamsr_camera_up"].type == "gauge"


def test_live_tells_the_engine_the_cameras_batch(monkeypatch) -> None:
    """TensorRT builds its profile for the batch it is told; live mode tells it the policy's batch."""
    from streamsr.commands import live
    from streamsr.livepipe.config import parse_config

    class Recorder:
        told: list[int] = []

        def expect_batch(self, n: int) -> None:
            self.told.append(n)

    opened = Recorder()
    monkeypatch.setattr(live, "open_backend", lambda options: opened if options.batch == 6 else None)
    cfg = parse_config({"cameras": [{"name": "a", "url": "rtsp://cam/"}], "live": {"batch": 6}})
    assert live.open_live_backend(cfg) is opened and opened.told == [6]
