"""Credentials never leave the process: hostile URLs masked in text, in every log record
(FFmpeg's own messages forwarded by PyAV included), and, through the real CLI, in stdout,
stderr, the JSON summary, /metrics, /stats.json and the preview page."""
from __future__ import annotations

import base64
import io
import json
import logging
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from rtsp_server import free_port

from streamsr.urls import mask_text, mask_url, url_secrets  # the newer helpers are imported where used

pytestmark = pytest.mark.timeout(90)

# (url, the masked form, the secrets that must not survive)
HOSTILE = [
    ("rtsp://user:p@ss@host/", "rtsp://user:***@host/", ["p@ss", "ss@host"]),
    ("rtsp://user:a@b@c@10.0.0.5:554/s1", "rtsp://user:***@10.0.0.5:554/s1", ["a@b@c", "b@c"]),
    ("rtsp://admin:pa:ss:word@cam/s", "rtsp://admin:***@cam/s", ["pa:ss:word", "ss:word"]),
    ("rtsp://admin:p%40ss%3Aw%2Fd@cam/s", "rtsp://admin:***@cam/s", ["p%40ss%3Aw%2Fd", "p@ss:w/d"]),
    ("rtsp://admin:S3cr@t@[fe80::1%25eth0]:554/h264", "rtsp://admin:***@[fe80::1%25eth0]:554/h264", ["S3cr@t"]),
    ("rtsp://admin:S3cr@t@[::1]/s", "rtsp://admin:***@[::1]/s", ["S3cr@t"]),
    ("rtsp://[::1]:554/s", "rtsp://[::1]:554/s", []),
    ("rtsp://u:pa/ss@host/x", "rtsp://u:***@host/x", ["pa/ss"]),  # a raw '/' is invalid, still a secret
    ("http://cam/x.mjpg?token=Tk123&res=hd", "http://cam/x.mjpg?token=***&res=hd", ["Tk123"]),
    ("http://cam/x?res=hd&password=Pw9&user=a", "http://cam/x?res=hd&password=***&user=a", ["Pw9"]),
    ("https://u:Vv8@cam/live.m3u8?access_token=AT1&sig=Zz9", "https://u:***@cam/live.m3u8?access_token=***&sig=***",
     ["Vv8", "AT1", "Zz9"]),
    ("rtsp://:onlypass@cam/s", "rtsp://:***@cam/s", ["onlypass"]),
    ("rtsp://onlyuser@cam/s", "rtsp://onlyuser@cam/s", []),
    ("http://cam:8080/path@v2/x", "http://cam:8080/path@v2/x", []),  # '@' in a path is no user info
    ("/dev/video0", "/dev/video0", []),
]


@pytest.mark.parametrize("url, masked, secrets", HOSTILE)
def test_hostile_urls_are_masked(url: str, masked: str, secrets: list[str]) -> None:
    assert mask_url(url) == masked
    for secret in secrets + url_secrets(url):
        assert secret not in mask_url(url), secret
    # inside messages too, quoted as FFmpeg errors quote them, next to another URL
    text = f"cannot open '{url}': Connection refused, nor {url},rtsp://x:Other1@h/y"
    out = mask_text(text)
    for secret in secrets + ["Other1"]:
        assert secret not in out, (secret, out)


def test_every_password_of_a_url_is_found_for_leak_checks() -> None:
    assert url_secrets("rtsp://u:p@ss@h/") == ["p@ss"]
    assert set(url_secrets("rtsp://u:p%40ss@h/?token=a%2Bb")) == {"p%40ss", "p@ss", "a%2Bb", "a+b"}


def test_registered_secrets_are_masked_outside_their_url() -> None:
    from streamsr.urls import clear_registered_secrets, register_secrets

    url = "rtsp://viewer:Hunter2%21x@cam/s"
    try:
        register_secrets(url)
        basic = base64.b64encode(b"viewer:Hunter2!x").decode()
        text = f"auth failed for password Hunter2!x (raw Hunter2%21x), header {basic}, Authorization: Digest abc"
        out = mask_text(text)
        assert "Hunter2" not in out and basic not in out and "Digest abc" not in out, out
    finally:
        clear_registered_secrets()


def _capture(logger_name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    from streamsr.urls import MaskingFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, stream, handler


def test_log_filter_masks_args_messages_and_tracebacks() -> None:
    logger, stream, handler = _capture("streamsr.test_masking")
    try:
        logger.warning("%s: stream lost (%s)", "gate", "rtsp://u:p@ss@w0rd@h/x")
        try:
            raise OSError("cannot open 'rtsp://u:tr@ce@h/x'")
        except OSError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "rtsp://u:***@h/x" in text and "w0rd" not in text and "ss@" not in text and "tr@ce" not in text


def test_ffmpeg_messages_forwarded_by_pyav_are_masked() -> None:
    """PyAV hands FFmpeg's log lines to Python logging ("libav.*"): the handler filter masks them."""
    import av
    import av.logging

    logger, stream, handler = _capture("libav")
    before = av.logging.get_level()
    av.logging.set_level(av.logging.VERBOSE)
    try:
        av.logging.log(av.logging.ERROR, "rtsp", "method DESCRIBE failed for rtsp://cam:Ff@mpeg9@127.0.0.1:9/s")
        with pytest.raises(av.error.FFmpegError) as caught:  # a real FFmpeg message, with the URL in it
            av.open(f"rtsp://cam:Ff@mpeg9@127.0.0.1:{free_port()}/s", timeout=(2, 2))
        logging.getLogger("libav.test").error("%s", caught.value)
    finally:
        av.logging.set_level(before)
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "cam:***@127.0.0.1" in text and "mpeg9" not in text, text


def _get(url: str, host: str | None = None) -> bytes:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read()


def test_no_secret_reaches_logs_summary_metrics_or_page(models_dir: Path, clip_factory, tmp_path: Path) -> None:
    """The real CLI with --debug, hostile camera and push URLs on refused
    ports: nothing secret in stdout, stderr, the JSON summary, /metrics, /stats.json or the page.
    Each password is made of tokens that are checked one by one (a partly masked password leaks
    the tokens after its first '@' or ':')."""
    clip = clip_factory("mask_clip.mp4", width=64, height=48, frames=25)
    port = free_port()
    cams = [
        f"a=rtsp://user:Aa1@Bb2@Cc3@127.0.0.1:{free_port()}/s",
        f"b=rtsp://admin:Dd4:Ee5:Ff6@127.0.0.1:{free_port()}/s",
        f"c=rtsp://admin:Gg7%40Hh8%3AIi9%2FJj0@127.0.0.1:{free_port()}/s",
        f"d=rtsp://admin:Kk1@Ll2@[::1]:{free_port()}/s",
        f"e=http://viewer:Oo5@Pp6@127.0.0.1:{free_port()}/x.ts?token=Mm3&res=hd&password=Nn4",
    ]
    tokens = ["Aa1", "Bb2", "Cc3", "Dd4", "Ee5", "Ff6", "Gg7", "Hh8", "Ii9", "Jj0", "Kk1", "Ll2", "Mm3", "Nn4",
              "Oo5", "Pp6", "Qq7", "Rr8", "Ss9"]
    push = f"rtsp://pub:Qq7@Rr8@127.0.0.1:{free_port()}/{{camera}}?token=Ss9"
    summary = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamsr", "--debug", "live", *cams, f"file={clip.path}", "--loop",
         "--model", str(models_dir / "near_x2.json"), "--engine", "onnxruntime", "--duration", "6",
         "--backoff-max", "0.5", "--open-timeout", "1", "--serve", f"127.0.0.1:{port}", "-o", push,
         "--json", str(summary)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = ""
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not served:
            try:
                served = "".join(_get(f"http://127.0.0.1:{port}/{p}").decode() for p in ("", "metrics", "stats.json"))
            except OSError:
                time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert served and "streamsr_frames_out_total" in served
    everything = out + err + summary.read_text() + served
    # the failures were logged, with their URLs masked
    assert "stream lost" in err and "rtsp://pub:***@" in err and "user:***@" in err, err
    leaked = [t for t in tokens if t in everything]
    assert not leaked, (leaked, err[-3000:])
    assert json.loads(summary.read_text())["cameras"]["file"]["frames_out"] > 10
