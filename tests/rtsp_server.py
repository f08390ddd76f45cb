"""A real RTSP server on 127.0.0.1 for tests and benchmarks: GStreamer's gst-rtsp-server.

Run as a script it must be the system ``/usr/bin/python3`` (PyGObject and the GStreamer
introspection data come from Debian: gir1.2-gst-rtsp-server-1.0, python3-gi,
gstreamer1.0-plugins-{base,good,ugly}). ``RtspServer`` starts it as a child process:

    with RtspServer(mounts={"cam": (352, 288, 25)}) as server:
        url = server.url("cam")           # rtsp://127.0.0.1:<free port>/cam
        server.stop(); server.start()     # same port: a restart mid-stream

Mounts are shared (one encoder, several clients). ``user``/``password`` turn on basic
authentication. ``record`` adds a mount ``/push`` that accepts an RTSP publish (ANNOUNCE/
RECORD) of H.264 and writes what it receives to an MPEG-TS file.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
_CHECK = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
          "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
          "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('videotestsrc')")


def unavailable_reason() -> str | None:
    """Why the server cannot run here (None when it can)."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", _CHECK], capture_output=True, timeout=30, env=_clean_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {SYSTEM_PYTHON}: {e}"
    if r.returncode != 0:
        return ("gst-rtsp-server is missing for /usr/bin/python3 (apt-get install gir1.2-gst-rtsp-server-1.0 "
                "python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    """The environment without the virtualenv, so the system Python sees only its own packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(venv))
    return env


class RtspServer:
    def __init__(
        self,
        mounts: dict[str, tuple[int, int, int]] | None = None,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        record: Path | None = None,
        pattern: str = "ball",
        log: Path | None = None,
    ) -> None:
        self.mounts = mounts or {"cam": (352, 288, 25)}
        self.port = port or free_port()
        self.user, self.password = user, password
        self.record = record
        self.pattern = pattern
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, mount: str = "cam", credentials: bool = True) -> str:
        auth = f"{self.user}:{self.password}@" if credentials and self.user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/{mount}"

    def command(self) -> list[str]:
        cmd = [SYSTEM_PYTHON, str(Path(__file__).resolve()), "--port", str(self.port), "--pattern", self.pattern]
        for name, (w, h, fps) in self.mounts.items():
            cmd += ["--mount", f"{name}={w}x{h}@{fps}"]
        if self.user:
            cmd += ["--user", self.user, "--password", self.password or ""]
        if self.record:
            cmd += ["--record", str(self.record)]
        return cmd

    def start(self, timeout: float = 20.0) -> RtspServer:
        assert self.proc is None, "already running"
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=out, env=_clean_env())
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "READY <port>" once listening
        if not line.startswith(b"READY"):
            self.stop()
            raise RuntimeError(f"RTSP server did not start (said {line!r})")
        if time.monotonic() > deadline:
            raise RuntimeError("RTSP server start timed out")
        self.starts += 1
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the server itself (runs under /usr/bin/python3) ------------------------------------------
def _serve(argv: list[str]) -> int:
    import argparse
    import signal

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mount", action="append", default=[], help="name=WxH@fps")
    ap.add_argument("--pattern", default="ball")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--record")
    a = ap.parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    mounts = server.get_mount_points()
    permissions = _viewer_auth(GstRtspServer, server, a.user, a.password) if a.user else None
    for spec in a.mount:
        mounts.add_factory(*_test_source(GstRtspServer, spec, a.pattern, permissions))
    if a.record:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        factory.set_launch(f"( rtph264depay name=depay0 ! h264parse ! mpegtsmux ! filesink location={a.record} )")
        factory.set_latency(100)
        mounts.add_factory("/push", factory)
    if server.attach(None) == 0:
        print("FAILED attach", flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY {a.port}", flush=True)
    loop.run()
    return 0


def _viewer_auth(GstRtspServer, server, user: str, password: str):  # noqa: N803 - the gi module
    """Basic auth for ``user``; the permissions a mount needs for it."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", "media.factory.access", True)
    permissions.add_permission_for_role("viewer", "media.factory.construct", True)
    return permissions


def _test_source(GstRtspServer, spec: str, pattern: str, permissions):  # noqa: N803 - the gi module
    """(mount path, factory) of a live H.264 test pattern for ``name=WxH@fps``."""
    name, geometry = spec.split("=")
    size, fps = geometry.split("@")
    w, h = size.split("x")
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={w},height={h},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=1000 "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    if permissions is not None:
        factory.set_permissions(permissions)
    return f"/{name}", factory


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
