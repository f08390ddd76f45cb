"""The `streamsr` command. The only place that configures logging or prints errors."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from streamsr import __version__
from streamsr.backends import ENGINE_CHOICES
from streamsr.backends.base import PRECISIONS
from streamsr.enhance import SCALES, EnhanceOptions, enhance
from streamsr.errors import StreamSRError
from streamsr.progress import ProgressBar, table
from streamsr.sinks.av_sink import ENCODERS, EncodeSettings

log = logging.getLogger("streamsr")

# subcommand -> module exposing add_arguments(parser) and run(args) -> int
_SUBCOMMAND_MODULES = {
    "demo": ("streamsr.demo", "enhance a generated clip and measure FPS and PSNR against bicubic"),
    "bench": ("streamsr.bench", "time decode, inference and encode per engine and scale"),
    "eval": ("streamsr.evaluate", "PSNR/SSIM of a model on a folder of HR images"),
    "live": ("streamsr.live", "enhance live cameras (RTSP, HTTP, webcams) to a window, browser page, re-stream or recording"),
    "build-engine": ("streamsr.build_engine", "build and cache a TensorRT engine ahead of time"),
    "bench-gpu": ("streamsr.bench_gpu", "inference and end-to-end speed on an NVIDIA GPU against its roofline"),
    "batch": ("streamsr.batch.command", "enhance many files or folders into a mirrored tree: resumable, "
                                        "parallel, long files split; on this machine or a Ray cluster"),
}


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes get one line and exit 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"streamsr: error: {message} (see {self.prog} --help)\n")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=int, default=2, choices=SCALES, help="upscaling factor (default 2)")
    p.add_argument("--model", default=None, help="shipped model name or a path to a .json card (default: the best shipped model on compressed input at the fast tier's cost; see README)")
    p.add_argument("--engine", default="auto", choices=ENGINE_CHOICES,
                   help="inference engine; auto prefers openvino, then onnxruntime, then torch")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="compute precision; auto is fp32 on the CPU and fp16 on a GPU; "
                        "bf16 needs native support (openvino, torch, cuda)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    p.add_argument("--batch", type=int, default=1, help="frames per inference call (default 1)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="memory ceiling: most input pixels per inference call; "
                        "larger frames run as overlapping tiles (default: no limit)")


def add_encode_arguments(p: argparse.ArgumentParser) -> None:
    """Output options shared by enhance and batch."""
    p.add_argument("--codec", default="h264", choices=sorted(ENCODERS), help="video codec (default h264)")
    p.add_argument("--preset", default="veryfast", help="encoder speed preset (default veryfast)")
    p.add_argument("--crf", type=int, default=18, help="encoder quality, lower is better (default 18)")
    p.add_argument("--compare", action="store_true",
                   help="write input (nearest), bicubic and model side by side")


def enhance_options(args: argparse.Namespace) -> EnhanceOptions:
    """EnhanceOptions from the arguments of add_model_arguments and add_encode_arguments."""
    return EnhanceOptions(
        scale=args.scale, model=args.model, engine=args.engine, precision=args.precision,
        threads=args.threads, batch=args.batch, compare=args.compare, max_pixels=args.max_pixels,
        encode=EncodeSettings(codec=args.codec, preset=args.preset, crf=args.crf),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="streamsr", description="Real-time super-resolution for video.")
    parser.add_argument("--version", action="version", version=f"streamsr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("enhance", help="upscale a video file, an image or a folder of images")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output video file, or output folder for images")
    add_model_arguments(p)
    add_encode_arguments(p)

    for name, (_module, help_text) in _SUBCOMMAND_MODULES.items():
        try:
            module = importlib.import_module(_module)
        except ModuleNotFoundError as e:
            if e.name != _module:
                raise
            continue  # not written yet in this checkout
        sp = sub.add_parser(name, help=help_text)
        sp.set_defaults(_module=_module)
        module.add_arguments(sp)
    return parser


def run_enhance(args: argparse.Namespace) -> int:
    options = enhance_options(args)
    progress = ProgressBar(total=None)
    result = enhance(args.input, args.output, options, on_frame=progress)
    progress.finish()
    s = result.stats
    if result.interrupted:
        if s.frames:
            print(f"interrupted: {args.output} holds the {s.frames} frames done", file=sys.stderr)
        else:
            print("interrupted before the first frame: nothing was written", file=sys.stderr)
        return 130
    rows = [
        ("input", str(args.input)),
        ("output", str(args.output)),
        ("model", f"{result.model} on {result.backend}"),
        ("frames", f"{s.frames}" + (f" of {result.frames_expected}" if result.frames_expected else "")),
        ("wall time", f"{s.wall_s:.2f} s"),
        ("speed", f"{s.fps:.2f} fps"),
    ]
    rows += [(f"{stage} (busy)", f"{ms:.1f} ms/frame") for stage, ms in s.stage_ms_per_frame.items()]
    print(table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="streamsr: %(levelname)s: %(message)s")
    try:
        if args.command == "enhance":
            return run_enhance(args)
        return importlib.import_module(args._module).run(args)
    except StreamSRError as e:
        if args.debug:
            raise
        print(f"streamsr: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("streamsr: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the user, the traceback with --debug
        if args.debug:
            raise
        print(f"streamsr: internal error: {type(e).__name__}: {e} (rerun with --debug for details)",
              file=sys.stderr)
        return 1
