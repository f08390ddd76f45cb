"""`streamsr bench-gpu`: inference and end-to-end speed on an NVIDIA GPU, against its roofline.

For every shipped model and scale, input size, batch and precision it reports the
model-only FPS (CUDA-graph replays on device-resident input, timed with CUDA events), the
FPS with uint8 upload and download included, the FLOPs and the fewest bytes a frame must
move (uint8 in, uint8 out), and the fraction of the roofline reached. The roofline uses
the device's measured copy bandwidth and matrix-multiply rate, not datasheet figures.
This module has not run on the development machines, which have no GPU.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from streamsr import zoo
from streamsr.errors import BackendUnavailable, ModelError

SIZES = ((352, 288), (704, 576), (1280, 720), (1920, 1080))
BATCHES = (1, 4, 16)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default="espcn", help="comma-separated model names (default espcn)")
    p.add_argument("--scales", default="2,3,4")
    p.add_argument("--precisions", default="fp32,fp16")
    p.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES))
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    p.add_argument("--e2e-frames", type=int, default=600, help="frames of the 960x540 end-to-end clip")
    p.add_argument("--json", type=Path, default=Path("bench-results/bench-gpu.json"))


def _events_ms(torch, fn, repeats: int) -> float:
    """Median milliseconds of ``fn`` over ``repeats`` runs, timed with CUDA events."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return float(np.median(times))


def device_ceilings(torch) -> dict[str, float]:
    """Measured copy bandwidth (bytes read + written) and fp16/fp32 matrix-multiply rates."""
    n_bytes = 1 << 30
    src = torch.empty(n_bytes, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    ms = _events_ms(torch, lambda: dst.copy_(src), 20)
    rates = {"bandwidth_gbs": 2 * n_bytes / ms / 1e6}
    torch.backends.cuda.matmul.allow_tf32 = False
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
        b = torch.randn(8192, 8192, device="cuda", dtype=dtype)
        ms = _events_ms(torch, lambda: a @ b, 10)
        rates[f"matmul_{name}_tflops"] = 2 * 8192**3 / ms / 1e9
    return rates


def model_rows(torch, card, precision: str, sizes, batches, ceilings) -> list[dict]:
    from streamsr.backends.cuda_backend import CudaBackend

    rows = []
    with CudaBackend(card, precision=precision, cuda_graphs=True) as backend:
        for width, height in sizes:
            for batch in batches:
                frames = np.random.default_rng(0).integers(0, 256, (batch, height, width), dtype=np.uint8)
                with torch.inference_mode():
                    x = backend._io.upload(frames)
                    model_ms = _events_ms(torch, lambda: backend._forward(x), 50)
                    with_io_ms = _wall_ms(torch, lambda: backend.run(frames), 20)
                flops = 2 * card.macs_per_pixel * width * height
                min_bytes = width * height * (1 + card.scale**2)  # uint8 in, uint8 out (Y)
                rate = ceilings[f"matmul_{'fp16' if precision != 'fp32' else 'fp32'}_tflops"] * 1e12
                floor_s = max(flops / rate, min_bytes / (ceilings["bandwidth_gbs"] * 1e9))
                rows.append({
                    "model": card.name, "precision": precision, "size": f"{width}x{height}", "batch": batch,
                    "model_fps": batch / model_ms * 1000, "with_io_fps": batch / with_io_ms * 1000,
                    "gflop_per_frame": flops / 1e9, "min_bytes_per_frame": min_bytes,
                    "roofline_fraction": floor_s / (model_ms / 1000 / batch),
                })
    return rows


def _wall_ms(torch, fn, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) * 1000 / repeats


def end_to_end(frames: int) -> list[dict[str, object]]:
    """960x540 H.264 -> 1920x1080 through the file pipeline on the cuda engine (ESPCN x2): with
    NVDEC and NVENC where the driver has them (``auto``), and with the CPU's codecs."""
    from streamsr.commands.bench import synthetic_clip
    from streamsr.enhance import EnhanceOptions, enhance
    from streamsr.sinks.av_sink import EncodeSettings

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = synthetic_clip(Path(tmp) / "in.mp4", frames, size=(960, 540))
        for codecs in ("auto", "cpu"):
            options = EnhanceOptions(scale=2, engine="cuda", batch=8, encode=EncodeSettings(preset="ultrafast"),
                                     decoder=codecs, encoder=codecs, force=True)
            result = enhance(clip, Path(tmp) / "out.mp4", options)
            rows.append({"codecs": codecs, "decoder": result.decoder, "encoder": result.encoder,
                         "frames": result.stats.frames, "fps": result.stats.fps, **result.stats.stage_ms_per_frame})
    return rows


def run(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("bench-gpu needs torch with CUDA (pip install 'streamsr[torch]')") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("bench-gpu needs a CUDA GPU visible to torch")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    ceilings = device_ceilings(torch)
    rows = []
    for model in args.models.split(","):
        for scale in (int(s) for s in args.scales.split(",")):
            try:
                card = zoo.resolve_model(model, scale)
            except ModelError as e:
                print(f"skip {model} x{scale}: {e}")
                continue
            for precision in args.precisions.split(","):
                rows += model_rows(torch, card, precision, sizes, batches, ceilings)
    e2e = end_to_end(args.e2e_frames)
    report = {"device": torch.cuda.get_device_name(), "ceilings": ceilings, "rows": rows, "end_to_end": e2e}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['device']}: copy {ceilings['bandwidth_gbs']:.0f} GB/s, matmul fp16 "
          f"{ceilings['matmul_fp16_tflops']:.0f} / fp32 {ceilings['matmul_fp32_tflops']:.0f} TFLOP/s")
    print(f"{'model':<10} {'prec':<5} {'size':>10} {'batch':>5} {'model fps':>10} {'with I/O':>9} {'roofline':>8}")
    for r in rows:
        print(f"{r['model']:<10} {r['precision']:<5} {r['size']:>10} {r['batch']:>5} {r['model_fps']:>10.0f} "
              f"{r['with_io_fps']:>9.0f} {r['roofline_fraction']:>8.0%}")
    for r in e2e:
        print(f"end to end 960x540 -> 1920x1080 (cuda; decode {r['decoder']}, encode {r['encoder']}, "
              f"preset ultrafast): {r['fps']:.1f} fps")
    print(f"wrote {args.json}")
    return 0
