"""`streamsr bench`: decode, inference, encode and end to end, per engine and scale.

Also measures the machine's float32 matrix-multiply rate (numpy's BLAS) so that each
engine's effective GFLOP/s can be read as a fraction of it, and times OpenCV
dnn_superres's ESPCN in a plain sequential loop as the reference peer when
opencv-contrib and the peer models are available.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path

import numpy as np

from streamsr import zoo
from streamsr.backends import AUTO_ORDER, create_backend, installed_backends
from streamsr.backends.base import PRECISIONS, default_threads
from streamsr.colour import BT601_TV, rgb_to_yuv420_swscale
from streamsr.encoding import VideoEncoding
from streamsr.errors import BackendUnavailable, ConfigError, InputError, ModelError, OutputError
from streamsr.pipeline.pipeline import Pipeline, PipelinePolicy
from streamsr.postprocess import finish
from streamsr.sinks.av_sink import AvFileSink, EncodeSettings, StreamTiming
from streamsr.sinks.preflight import check_encode_settings
from streamsr.sources.av_source import AvFileSource
from streamsr.sinks.video_stream import add_video_stream, encode, write_clip
from streamsr.synthetic import scene_frames
from streamsr.types import ModelCard

log = logging.getLogger(__name__)

PEER_DIRS = ("../shared/peers/opencv_dnn_superres", "../../shared/peers/opencv_dnn_superres")
DEFAULT_JSON_DIR = Path("bench-results")  # relative to the current directory


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, default=None, help="clip to use (default: a generated 768x576 clip)")
    p.add_argument("--engines", default="installed",
                   help="comma-separated engines, or 'installed' (default) for every installed one")
    p.add_argument("--scales", default="2", help="comma-separated scales (default 2)")
    p.add_argument("--model", default=None, help="model name (default: as enhance)")
    p.add_argument("--precision", default="auto", help=f"comma-separated, from {', '.join(PRECISIONS)}")
    p.add_argument("--frames", type=int, default=200, help="frames to time (default 200)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--preset", default="veryfast", help="x264 preset for the encode stages")
    p.add_argument("--crf", type=int, default=18, help="x264 CRF for the encode stages (default 18, as enhance)")
    p.add_argument("--peer-models", type=Path, default=None,
                   help="folder with OpenCV dnn_superres ESPCN_x{2,3,4}.pb (default: ../shared/peers/...)")
    p.add_argument("--no-peer", action="store_true", help="skip the OpenCV dnn_superres reference loop")
    p.add_argument("--json", type=Path, default=None,
                   help="file to write the results to (default: bench-results/bench-<date>-<time>.json "
                        "under the current directory); checked before the benchmark starts")


@dataclass
class EngineResult:
    engine: str
    precision: str
    scale: int
    model: str
    width: int
    height: int
    frames: int
    batch: int
    infer_fps: float
    gflops: float
    matmul_fraction: float
    encode_fps: float
    e2e_fps: float
    e2e_over_infer: float
    e2e_stage_ms: dict[str, float]


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n x n x n matrix product through numpy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def synthetic_clip(path: Path, frames: int, size: tuple[int, int] = (768, 576)) -> Path:
    planes = (rgb_to_yuv420_swscale(f, BT601_TV) for f in scene_frames(*size, frames))
    write_clip(path, planes, rate=Fraction(25), lossless=False)
    return path


def decode_frames(clip: Path, count: int) -> tuple[list, float]:
    with AvFileSource(clip) as source:
        t0 = time.perf_counter()
        frames = list(islice(source, count))
        return frames, len(frames) / (time.perf_counter() - t0)


def time_inference(backend, frames: list, batch: int) -> tuple[float, list]:
    """Inference alone, driven as the pipeline drives it: ``in_flight`` batches submitted, and
    on a thread of its own, as the pipeline's inference stage runs.

    The thread matters. With torch on the CPU, GNU OpenMP lets the workers of the calling
    thread's team spin between parallel regions; when the main thread is the only one that ever
    ran torch, its team is the only team and spins at full length, burning cycles that the
    computation needs. A second thread that runs torch makes OpenMP throttle the spinning.
    Timed on the main thread, torch's inference alone ran about 17% slower (CPU time per
    frame: 430 ms against 365 ms, ESPCN x2 at 768x576, 2 threads) than in the pipeline, so
    the table showed end to end faster than inference alone.
    """
    result: list = []

    def run() -> None:
        try:
            result.append(_time_inference(backend, frames, batch))
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            result.append(e)

    worker = threading.Thread(target=run, name="streamsr-bench-infer")
    worker.start()
    worker.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _time_inference(backend, frames: list, batch: int) -> tuple[float, list]:
    ys = [f.planes[0] for f in frames]
    chunks = [np.stack(ys[i : i + batch]) for i in range(0, len(ys), batch)]
    if hasattr(backend, "expect_batch"):  # as Pipeline.run does
        backend.expect_batch(batch)
    for chunk in chunks[: backend.in_flight]:  # warm-up: compilation, allocation, every stream
        backend.submit(chunk).result()
    outputs, pending = [], []
    t0 = time.perf_counter()
    for chunk in chunks:
        pending.append(backend.submit(chunk))
        if len(pending) >= backend.in_flight:
            out = pending.pop(0).result()
            outputs.extend(out[: max(0, 60 - len(outputs))])
    for p in pending:
        p.result()
    return len(ys) / (time.perf_counter() - t0), outputs


def time_encode(frames: list, outputs: list, scale: int, timing: StreamTiming, settings: EncodeSettings, tmp: Path) -> float:
    from dataclasses import replace

    sink = AvFileSink(tmp / "encode.mp4", timing, settings)
    done = [finish(replace(f, planes=(y, f.planes[1], f.planes[2])), scale) for f, y in zip(frames, outputs)]
    t0 = time.perf_counter()
    for frame in done:
        sink.write(frame)
    sink.close()
    return len(done) / (time.perf_counter() - t0)


def time_end_to_end(clip: Path, count: int, backend, scale: int, batch: int, settings: EncodeSettings, tmp: Path):
    with AvFileSource(clip) as source:
        timing = StreamTiming(time_base=source.info.time_base, rate=source.info.rate)
        sink = AvFileSink(tmp / "e2e.mp4", timing, settings, copy_from=None)
        policy = PipelinePolicy(max_batch=batch, queue_size=max(8, 2 * batch))
        pipeline = Pipeline(islice(source, count), backend, sink, policy, post=lambda f: finish(f, scale))
        stats = pipeline.run()
        sink.close()
    return stats


def peer_fps(clip: Path, count: int, scale: int, models: Path, settings: EncodeSettings, tmp: Path) -> float | None:
    """OpenCV dnn_superres ESPCN, decode -> upsample -> encode one frame after another."""
    try:
        import cv2

        create = cv2.dnn_superres.DnnSuperResImpl_create
    except AttributeError:
        log.warning("peer skipped: cv2.dnn_superres needs opencv-contrib-python-headless")
        return None
    model_file = models / f"ESPCN_x{scale}.pb"
    if not model_file.exists():
        log.warning("peer skipped: %s not found", model_file)
        return None
    import av

    sr = create()
    sr.readModel(str(model_file))
    sr.setModel("espcn", scale)
    with av.open(str(clip)) as inp, av.open(str(tmp / "peer.mp4"), "w") as out:
        stream = None
        t0 = time.perf_counter()
        n = 0
        for frame in islice(inp.decode(video=0), count):
            up = sr.upsample(frame.to_ndarray(format="bgr24"))
            if stream is None:
                encoding = VideoEncoding("h264", preset=settings.preset, crf=settings.crf)
                stream = add_video_stream(out, encoding, (up.shape[1], up.shape[0]),
                                          rate=inp.streams.video[0].average_rate)
            # the peer's own loop: FFmpeg converts its BGR to the encoder's YUV, as it would for the peer
            encode(out, stream, av.VideoFrame.from_ndarray(up, format="bgr24"))
            n += 1
        encode(out, stream, None)
        return n / (time.perf_counter() - t0)


def _peer_dir(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    here = Path(__file__).resolve().parent.parent
    for candidate in PEER_DIRS:
        for base in (Path.cwd(), here):
            if (base / candidate).is_dir():
                return (base / candidate).resolve()
    return None


def _engines(arg: str) -> list[str]:
    if arg == "installed":
        return [e for e in AUTO_ORDER if e in installed_backends()]
    return [e.strip() for e in arg.split(",") if e.strip()]


def machine_info() -> dict[str, object]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": default_threads(), "cpus_on_machine": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform()}


def json_path(arg: Path | None) -> Path:
    """Where the JSON goes: exactly ``--json``, or the documented default. Checked up front so
    that a bad path fails before minutes of measuring, not after."""
    if arg is None:
        return DEFAULT_JSON_DIR / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    if arg.is_dir():
        raise OutputError(f"--json names a folder ({arg}); give a file name")
    parent = arg.parent if str(arg.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"--json: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"--json: the folder {parent} is not writable")
    return arg


def run(args: argparse.Namespace) -> int:
    scales = [int(s) for s in args.scales.split(",")]
    precisions = [p.strip() for p in args.precision.split(",")]
    if args.input is not None and not args.input.exists():
        raise InputError(f"input not found: {args.input}")
    path = json_path(args.json)
    settings = EncodeSettings(preset=args.preset, crf=args.crf)
    check_encode_settings(settings)
    print("measuring the float32 matrix-multiply rate ...", flush=True)
    mm = matmul_rate()
    results: list[EngineResult] = []
    peers: dict[int, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="streamsr-bench-") as tmp_name:
        tmp = Path(tmp_name)
        clip = args.input or synthetic_clip(tmp / "clip.mp4", args.frames)
        frames, decode_fps = decode_frames(clip, args.frames)
        with AvFileSource(clip) as src:
            timing = StreamTiming(time_base=src.info.time_base, rate=src.info.rate)
        bench = _Bench(args, clip, frames, timing, settings, mm, tmp)
        for scale in scales:
            card = zoo.resolve_model(args.model, scale)
            results += [r for engine in _engines(args.engines) for precision in precisions
                        if (r := bench.measure(engine, precision, card, scale)) is not None]
            if not args.no_peer:
                peers[scale] = bench.peer(scale)
    report = {
        "machine": machine_info(),
        "matmul_gflops": mm,
        "clip": str(args.input or "generated 768x576"),
        "decode_fps": decode_fps,
        "results": [asdict(r) for r in results],
        "peer_opencv_espcn_fps": {str(k): v for k, v in peers.items()},
        "settings": {"preset": args.preset, "crf": settings.crf, "threads": args.threads or default_threads()},
    }
    print_report(report)
    if args.json is None:
        path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


@dataclass
class _Bench:
    """One benchmark run's clip, decoded frames and settings; measures one engine at a time."""

    args: argparse.Namespace
    clip: Path
    frames: list
    timing: StreamTiming
    settings: EncodeSettings
    matmul_gflops: float
    tmp: Path

    def measure(self, engine: str, precision: str, card: ModelCard, scale: int) -> EngineResult | None:
        """Inference alone, encode alone and end to end; None (and a line) when it cannot run."""
        args = self.args
        try:
            backend = create_backend(engine, card, threads=args.threads, precision=precision)
        except (BackendUnavailable, ConfigError, ModelError) as e:
            print(f"skip {engine} {precision}: {e}")
            return None
        precision = backend.precision
        with backend:
            print(f"x{scale} {engine} {precision}: inference ...", flush=True)
            infer_fps, outputs = time_inference(backend, self.frames, args.batch)
            print(f"x{scale} {engine} {precision}: encode, end to end ...", flush=True)
            encode_fps = time_encode(self.frames, outputs, scale, self.timing, self.settings, self.tmp)
            stats = time_end_to_end(self.clip, args.frames, backend, scale, args.batch, self.settings, self.tmp)
        width, height = self.frames[0].size
        gflops = 2 * card.macs_per_pixel * width * height * infer_fps / 1e9
        return EngineResult(
            engine=engine, precision=precision, scale=scale, model=card.name, width=width,
            height=height, frames=len(self.frames), batch=args.batch, infer_fps=infer_fps,
            gflops=gflops, matmul_fraction=gflops / self.matmul_gflops, encode_fps=encode_fps, e2e_fps=stats.fps,
            e2e_over_infer=stats.fps / infer_fps, e2e_stage_ms=stats.stage_ms_per_frame,
        )

    def peer(self, scale: int) -> float | None:
        models = _peer_dir(self.args.peer_models)
        if models is None:
            log.warning("peer skipped: no peer model folder found (use --peer-models)")
            return None
        return peer_fps(self.clip, self.args.frames, scale, models, self.settings, self.tmp)


def print_report(report: dict) -> None:
    m = report["machine"]
    pinned = m.get("cpus_on_machine") or m["cores"]
    cores = f"{m['cores']} cores" if pinned == m["cores"] else f"{m['cores']} of its {pinned} cores (CPU affinity)"
    print(f"\nmachine: {m['cpu']}, {cores}; float32 matmul {report['matmul_gflops']:.0f} GFLOP/s")
    print(f"clip: {report['clip']}; decode alone {report['decode_fps']:.0f} fps\n")
    head = f"{'scale':>5} {'engine':<12} {'prec':<5} {'infer fps':>9} {'GFLOP/s':>8} {'of mm':>6} " \
           f"{'encode fps':>10} {'e2e fps':>8} {'e2e/inf':>7} {'vs peer':>7}"
    print(head)
    print("-" * len(head))
    for r in report["results"]:
        peer = report["peer_opencv_espcn_fps"].get(str(r["scale"]))
        vs = f"{r['e2e_fps'] / peer:.2f}x" if peer else "-"
        print(f"{'x' + str(r['scale']):>5} {r['engine']:<12} {r['precision']:<5} {r['infer_fps']:>9.2f} "
              f"{r['gflops']:>8.1f} {r['matmul_fraction']:>6.0%} {r['encode_fps']:>10.1f} {r['e2e_fps']:>8.2f} "
              f"{r['e2e_over_infer']:>7.0%} {vs:>7}")
    for r in report["results"]:
        if r["e2e_over_infer"] > 1.02:
            print(f"note: x{r['scale']} {r['engine']} {r['precision']}: end to end measured {r['e2e_over_infer']:.0%} "
                  "of inference alone; the two ran at different moments, so the machine was busier during the "
                  "inference timing: rerun on an idle machine")
    for scale, fps in report["peer_opencv_espcn_fps"].items():
        print(f"peer x{scale}: OpenCV dnn_superres ESPCN, sequential loop: " + (f"{fps:.2f} fps" if fps else "not run"))
