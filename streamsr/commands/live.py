"""`streamsr live`: cameras in (RTSP, HTTP, webcams, files at their own rate), enhanced video out.

    streamsr live rtsp://user:pass@cam1/stream --serve 127.0.0.1:8080
    streamsr live gate=rtsp://... yard=rtsp://... --record recordings --segment 3600
    streamsr live --config configs/live/example.yaml

Runs until Ctrl-C, SIGTERM, ``q`` in the window or ``--duration``; then prints per-camera
FPS, drops, latency percentiles, reconnects and uptime. URLs are printed masked.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from streamsr.backends.base import Backend
from streamsr.enhance import EnhanceOptions, open_backend
from streamsr.errors import ConfigError, PipelineError
from streamsr.livepipe.config import CameraConfig, LiveConfig, check_camera_name, load_config
from streamsr.livepipe.hub import Camera, LivePipeline, LivePolicy
from streamsr.livepipe.metrics import LiveStatus
from streamsr.progress import table
from streamsr.sinks.preview_access import BASIC_ENV, TOKEN_ENV, load_credentials
from streamsr.sinks.segments import SEGMENT_FORMATS, SegmentRecorder
from streamsr.sources.live_source import LiveSource
from streamsr.urls import mask_url, register_secret, register_secrets

log = logging.getLogger(__name__)

_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})=(.+)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every option that the YAML file also has defaults to None here: the command line wins over
    the file only where it was given, and the file wins over the defaults (``build_config``)."""
    from streamsr.commands.cli import add_model_arguments

    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="rtsp:// or http(s):// URL, /dev/videoN, or a video file; NAME=SOURCE names the camera")
    p.add_argument("--config", type=Path, help="YAML file of cameras and outputs (configs/live/example.yaml)")
    add_model_arguments(p)
    p.set_defaults(scale=None, model=None, engine=None, precision=None, threads=None, batch=None)
    flag = argparse.BooleanOptionalAction
    g = p.add_argument_group("outputs")
    g.add_argument("--serve", metavar="HOST:PORT", help="HTTP preview page, MJPEG streams and /metrics "
                   "(PORT alone binds 127.0.0.1; beyond loopback it needs a token or password)")
    g.add_argument("--allow-host", action="append", dest="allow_hosts", default=None, metavar="NAME[:PORT]",
                   help="a Host name the preview answers to besides its own address (repeatable)")
    g.add_argument("--token-file", default=None, metavar="PATH",
                   help=f"preview bearer token, first line of PATH (or ${TOKEN_ENV})")
    g.add_argument("--basic-auth-file", default=None, metavar="PATH",
                   help=f"preview basic auth, user:password on the first line of PATH (or ${BASIC_ENV})")
    g.add_argument("--display", action=flag, default=None,
                   help="an OpenCV window per camera (q quits, c toggles bicubic side by side)")
    g.add_argument("-o", "--output", metavar="rtsp://...", help="re-stream to an RTSP server; {camera} expands")
    g.add_argument("--record", metavar="DIR", help="record segments into DIR/<camera>/")
    g.add_argument("--segment", type=float, default=None, metavar="SECONDS", help="segment length (default 3600)")
    g.add_argument("--segment-format", choices=sorted(SEGMENT_FORMATS), default=None,
                   help="ts (default) or fmp4; both stay playable if the process is killed")
    g = p.add_argument_group("live policy and resilience")
    g.add_argument("--latency-ceiling", type=float, default=None, metavar="MS",
                   help="frames older than this are dropped, never shown (default 500)")
    g.add_argument("--queue", type=int, default=None, help="frames kept per camera and stage (default 2)")
    g.add_argument("--transport", choices=("tcp", "udp"), default=None, help="RTSP transport (default tcp)")
    g.add_argument("--open-timeout", type=float, default=None, metavar="S", help="default 10")
    g.add_argument("--read-timeout", type=float, default=None, metavar="S", help="default 5")
    g.add_argument("--stall", type=float, default=None, metavar="S", help="no frame for S seconds is a failure (default 5)")
    g.add_argument("--backoff-max", type=float, default=None, metavar="S", help="longest reconnect delay (default 2)")
    g.add_argument("--max-retries", type=int, default=None, help="give a camera up after N failures (default: never)")
    g.add_argument("--realtime", action=flag, default=None, help="play files at their own frame rate (default on)")
    g.add_argument("--loop", action=flag, default=None, help="play files again at their end")
    g = p.add_argument_group("run")
    g.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    g.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the exit summary as JSON")


# -- configuration ----------------------------------------------------------------------------
def _cli_cameras(sources: list[str], taken: set[str]) -> list[CameraConfig]:
    cams = []
    for spec in sources:
        m = _NAMED.match(spec)
        if m and not os.path.exists(spec) and not re.match(r"^[a-z]+://", spec):
            name, url = check_camera_name(m[1]), m[2]
        else:
            i = 0
            while f"cam{i}" in taken:
                i += 1
            name, url = f"cam{i}", spec
        taken.add(name)
        cams.append(CameraConfig(name, url))
    return cams


def build_config(args: argparse.Namespace) -> LiveConfig:
    """The command line over the YAML file (``--config``) over the defaults, option by option."""
    base = load_config(args.config) if args.config else LiveConfig(cameras=())
    cameras = list(base.cameras) + _cli_cameras(args.sources, {c.name for c in base.cameras})
    if not cameras:
        raise ConfigError("no camera: give a SOURCE (rtsp://..., /dev/video0, a file) or --config")
    m = base.model
    model = replace(m, scale=_pick(args.scale, m.scale), name=_pick(args.model, m.name),
                    engine=_pick(args.engine, m.engine), precision=_pick(args.precision, m.precision),
                    threads=_pick(args.threads, m.threads))
    p = base.policy
    policy = replace(p, latency_ceiling_ms=_pick(args.latency_ceiling, p.latency_ceiling_ms),
                     batch=_pick(args.batch, p.batch), queue=_pick(args.queue, p.queue))
    s = base.source
    source = replace(s, transport=_pick(args.transport, s.transport),
                     open_timeout_s=_pick(args.open_timeout, s.open_timeout_s),
                     read_timeout_s=_pick(args.read_timeout, s.read_timeout_s),
                     stall_s=_pick(args.stall, s.stall_s), backoff_max_s=_pick(args.backoff_max, s.backoff_max_s),
                     max_retries=_pick(args.max_retries, s.max_retries),
                     realtime=_pick(args.realtime, s.realtime), loop=_pick(args.loop, s.loop))
    o = base.outputs
    segments = replace(o.segments, segment_s=_pick(args.segment, o.segments.segment_s),
                       format=_pick(args.segment_format, o.segments.format))
    outputs = replace(o, serve=_pick(args.serve, o.serve), display=_pick(args.display, o.display),
                      push=_pick(args.output, o.push), record=_pick(args.record, o.record), segments=segments,
                      allow_hosts=tuple(_pick(args.allow_hosts, o.allow_hosts)),
                      token_file=_pick(args.token_file, o.token_file),
                      basic_auth_file=_pick(args.basic_auth_file, o.basic_auth_file))
    return LiveConfig(cameras=tuple(cameras), model=model, policy=policy, source=source, outputs=outputs)


def _pick(cli: Any, default: Any) -> Any:
    """The command line's value where it was given (not None), else the file's (or the default)."""
    return default if cli is None else cli


# -- running ------------------------------------------------------------------------------------
def open_live_backend(cfg: LiveConfig) -> Backend:
    """The model on its engine, told the batch the cameras share (TensorRT builds for it)."""
    options = EnhanceOptions(scale=cfg.model.scale, model=cfg.model.name, engine=cfg.model.engine,
                             precision=cfg.model.precision, threads=cfg.model.threads, batch=cfg.policy.batch)
    backend = open_backend(options)
    if (expect_batch := getattr(backend, "expect_batch", None)) is not None:
        expect_batch(cfg.policy.batch)
    return backend


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    _register_secrets(cfg)
    names = [c.name for c in cfg.cameras]
    cameras = []
    for c in cfg.cameras:
        opts = replace(cfg.source, transport=c.transport) if c.transport else cfg.source
        cameras.append(Camera(LiveSource(c.url, opts, name=c.name)))
    outputs: list[Any] = []
    backend = open_live_backend(cfg)
    try:
        display = None
        if cfg.outputs.display:
            from streamsr.sinks.display import DisplayWindow

            display = DisplayWindow(names, backend.card.scale)
        policy = LivePolicy(max_batch=cfg.policy.batch, queue_size=cfg.policy.queue,
                            latency_ceiling_s=cfg.policy.latency_ceiling_ms / 1000.0,
                            keep_source_planes=display is not None)
        pipeline = LivePipeline(cameras, backend, policy=policy)
        outputs = _open_outputs(cfg, names, pipeline, cameras)
        if display is not None:
            outputs.append(display)
        pipeline.outputs.extend(outputs)
        print(f"streamsr live: {len(cameras)} camera(s) through {backend.card.name} on {backend.describe()}",
              file=sys.stderr)
        for c in cfg.cameras:
            print(f"  {c.name}: {mask_url(c.url)}", file=sys.stderr)
        for o in outputs:
            if hasattr(o, "url") and type(o).__name__ == "PreviewServer":
                print(f"  preview: {o.url}  (metrics: {o.url}metrics)", file=sys.stderr)
        sys.stderr.flush()
        _run_until_stopped(pipeline, display, cfg, args.duration)
    finally:
        for o in outputs + [out for cam in cameras for out in cam.outputs]:
            try:
                o.close()
            except Exception as e:  # noqa: BLE001 - close every output
                log.warning("closing %s failed: %s", type(o).__name__, e)
        backend.close()
    summary = summarize(pipeline, backend.card.name)
    print(table(_summary_rows(summary)))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if pipeline.error is not None:
        raise PipelineError(f"inference failed: {type(pipeline.error).__name__}: {pipeline.error}") from pipeline.error
    return 0


def _register_secrets(cfg: LiveConfig) -> None:
    """Every password and token of the run is masked wherever it appears, even outside its URL."""
    for c in cfg.cameras:
        register_secrets(c.url)
        if c.push:
            register_secrets(c.push)
    if cfg.outputs.push:
        register_secrets(cfg.outputs.push)


def _open_outputs(cfg: LiveConfig, names: list[str], pipeline: LivePipeline, cameras: list[Camera]) -> list[Any]:
    outputs: list[Any] = []
    o = cfg.outputs
    try:
        if o.serve:
            from streamsr.sinks.http_preview import PreviewServer, parse_bind

            host, port = parse_bind(o.serve)
            credentials = load_credentials(o.token_file, o.basic_auth_file)
            for secret in (credentials.token, credentials.basic):
                if secret:
                    register_secret(secret)
            outputs.append(PreviewServer(names, LiveStatus(lambda: pipeline.metrics), host, port, max_fps=o.preview_fps,
                                         credentials=credentials, allow_hosts=o.allow_hosts,
                                         max_clients=o.max_clients, timeout_s=o.client_timeout_s))
        if o.record:
            outputs.append(SegmentRecorder(o.record, o.segments))
        if o.push:
            from streamsr.sinks.rtsp_push import RtspPush

            outputs.append(RtspPush(o.push, names, cfg.source.transport))
        for cam, c in zip(cameras, cfg.cameras):
            if c.push:
                from streamsr.sinks.rtsp_push import RtspPush

                cam.outputs.append(RtspPush(c.push, [c.name], cfg.source.transport))
    except BaseException:
        for out in outputs + [out for cam in cameras for out in cam.outputs]:
            out.close()
        for cam in cameras:
            cam.outputs.clear()
        raise
    return outputs


def _run_until_stopped(pipeline: LivePipeline, display: Any, cfg: LiveConfig, duration: float | None) -> None:
    stop = pipeline.stop_event
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: pipeline.stop())
    deadline = None if duration is None else time.monotonic() + duration
    pipeline.start()
    try:
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if display is not None:
                if not display.show(10):
                    break
            else:
                stop.wait(0.2)
            if all(c.error is not None for c in pipeline.cameras):
                log.error("every camera has stopped")
                break
    except KeyboardInterrupt:
        pass
    finally:
        pipeline.stop()
        stuck = pipeline.join(timeout=max(5.0, cfg.source.read_timeout_s + 1))
        if stuck:
            log.warning("threads still busy at exit (a blocked read ends at its timeout): %s", ", ".join(stuck))
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for cam in pipeline.cameras:
            left = cam.source.outage_report()
            if left is not None:
                log.warning("%s: down at exit, for %.1f s", cam.name, left)


def summarize(pipeline: LivePipeline, model: str) -> dict[str, Any]:
    cams = {}
    for m in pipeline.metrics:
        s = m.snapshot(whole_run=True)
        run_s = max(s["running_s"], 1e-9)
        s["fps_out_mean"] = s["frames_out"] / run_s
        s["fps_in_mean"] = s["frames_in"] / run_s
        cams[m.name] = s
    return {"model": model, "batches": pipeline.batches,
            "mean_batch": pipeline.batch_frames / pipeline.batches if pipeline.batches else 0.0,
            "cameras": cams}


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def _summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [("model", summary["model"]),
                                   ("mean batch", f"{summary['mean_batch']:.2f} frames")]
    for name, s in summary["cameras"].items():
        lat = s["latency_s"]
        d = s["dropped"]
        rows += [
            (f"{name} frames", f"{s['frames_in']} in, {s['frames_out']} out "
                               f"({s['fps_in_mean']:.1f} / {s['fps_out_mean']:.1f} fps)"),
            (f"{name} dropped", f"{sum(d.values())} ({s['drop_rate']:.1%}): queue {d['queue']}, "
                                f"stale {d['stale']}, late {d['late']}, error {d['error']}"),
            (f"{name} latency", f"p50 {_ms(lat['p50'])} ms, p95 {_ms(lat['p95'])} ms, p99 {_ms(lat['p99'])} ms"),
            *_output_rows(name, s),
            (f"{name} health", f"{s['outages']} outage(s), {s['reconnects']} reconnect(s), "
                               f"up {s['uptime_s']:.1f} of {s['running_s']:.1f} s"),
        ]
    return rows


def _output_rows(name: str, s: dict[str, Any]) -> list[tuple[str, str]]:
    """A row per output that dropped frames or failed (none when every output kept up)."""
    rows = []
    for label in sorted(set(s["output_dropped"]) | set(s["output_errors_by_output"])):
        d = s["output_dropped"].get(label, {})
        errors = s["output_errors_by_output"].get(label, 0)
        if sum(d.values()) or errors:
            rows.append((f"{name} -> {label}", f"dropped: queue {d.get('queue', 0)}, late {d.get('late', 0)}; "
                                              f"{errors} error(s)"))
    return rows
