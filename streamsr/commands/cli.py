"""The `streamsr` command. The only place that configures logging or prints errors."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from streamsr import __version__
from streamsr.api import enhance_video
from streamsr.backends import ENGINE_CHOICES
from streamsr.backends.base import PRECISIONS
from streamsr.enhance import SCALES, EnhanceOptions, EnhanceResult
from streamsr.errors import StreamSRError
from streamsr.hwcodecs import DECODER_CHOICES, ENCODER_CHOICES
from streamsr.memory import parse_size
from streamsr.progress import ProgressBar, table
from streamsr.signals import interrupt_exit_code, interrupt_name, termination_as_interrupt
from streamsr.sinks.av_sink import ENCODERS, EncodeSettings
from streamsr.sources.deinterlace import DEINTERLACE_MODES
from streamsr.sources.integrity import DECODE_ERROR_POLICIES
from streamsr.urls import install_log_masking, mask_text

log = logging.getLogger("streamsr")

# subcommand -> module exposing add_arguments(parser) and run(args) -> int
_SUBCOMMAND_MODULES = {
    "demo": ("streamsr.commands.demo", "enhance a generated clip and measure FPS and PSNR against bicubic"),
    "bench": ("streamsr.commands.bench", "time decode, inference and encode per engine and scale"),
    "eval": ("streamsr.commands.eval", "PSNR/SSIM of a model on a folder of HR images"),
    "live": ("streamsr.commands.live", "enhance live cameras (RTSP, HTTP, webcams) to a window, browser page, re-stream or recording"),
    "build-engine": ("streamsr.commands.build_engine", "build and cache a TensorRT engine ahead of time"),
    "bench-gpu": ("streamsr.commands.bench_gpu", "inference and end-to-end speed on an NVIDIA GPU against its roofline"),
    "batch": ("streamsr.commands.batch", "enhance many files or folders into a mirrored tree: resumable, "
                                        "parallel, long files split; on this machine or a Ray cluster"),
}


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes get one line and exit 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"streamsr: error: {message} (see {self.prog} --help)\n")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=int, default=2, choices=SCALES, help="upscaling factor (default 2)")
    p.add_argument("--model", default=None, help="shipped model name or a path to a .json card (default: enhance and batch choose by how compressed the input is, live takes the best shipped model on compressed input at the fast tier's cost; see README)")
    p.add_argument("--engine", default="auto", choices=ENGINE_CHOICES,
                   help="inference engine; auto prefers openvino, then onnxruntime, then torch")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="compute precision; auto is fp32 on the CPU and fp16 on a GPU; "
                        "bf16 needs native support (openvino, torch, cuda)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    p.add_argument("--batch", type=int, default=1,
                   help="frames per inference call (default 1; enhance caps it to the memory budget)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="most input pixels per inference call; larger frames run as overlapping tiles "
                        "(default: what the memory budget allows)")


def add_encode_arguments(p: argparse.ArgumentParser) -> None:
    """Input and output options shared by enhance and batch."""
    p.add_argument("--codec", default="h264", choices=sorted(ENCODERS), help="video codec (default h264)")
    p.add_argument("--preset", default="veryfast", help="encoder speed preset (default veryfast)")
    p.add_argument("--crf", type=int, default=18, help="encoder quality, lower is better (default 18)")
    p.add_argument("--compare", action="store_true",
                   help="write input (nearest), bicubic and model side by side")
    p.add_argument("--on-decode-error", default="warn", choices=DECODE_ERROR_POLICIES,
                   help="frames of the input that cannot be decoded: 'warn' (default) writes the others, "
                        "names the loss on stderr and exits 0; 'fail' stops with an error and writes nothing")
    p.add_argument("--pix-fmt", default=None,
                   help="output pixel format, e.g. yuv420p for the widest playback (default: the input's "
                        "bit depth and chroma, or the nearest the encoder supports, with a warning)")
    p.add_argument("--memory-budget", type=parse_size, default=None, metavar="SIZE",
                   help="frame data a run may hold, e.g. 1G or 800M (default: a quarter of the available "
                        "memory, at most 2 GiB); batches are capped, large frames tiled, queues bounded to fit")
    p.add_argument("--decoder", default="auto", choices=DECODER_CHOICES,
                   help="video decoder: auto (default: NVDEC when the model runs on an NVIDIA GPU and the "
                        "driver has it, else the CPU), cpu, or nvdec (an error where it cannot open)")
    p.add_argument("--encoder", default="auto", choices=ENCODER_CHOICES,
                   help="video encoder: auto (default: NVENC when the model runs on an NVIDIA GPU and the "
                        "driver has it, else x264/x265), cpu, or nvenc (an error where it cannot open)")
    p.add_argument("--deinterlace", default="auto", choices=DEINTERLACE_MODES,
                   help="interlaced input: auto (default) deinterlaces flagged input one frame per frame; "
                        "field gives one frame per field (twice the rate); frame/field also deinterlace "
                        "unflagged input; off never deinterlaces")


def enhance_options(args: argparse.Namespace) -> EnhanceOptions:
    """EnhanceOptions from the arguments of add_model_arguments and add_encode_arguments (batch's files)."""
    return EnhanceOptions(
        scale=args.scale, model=args.model, engine=args.engine, precision=args.precision,
        threads=args.threads, batch=args.batch, compare=args.compare, max_pixels=args.max_pixels,
        encode=EncodeSettings(codec=args.codec, preset=args.preset, crf=args.crf, pix_fmt=args.pix_fmt),
        on_decode_error=args.on_decode_error, deinterlace=args.deinterlace, memory_budget=args.memory_budget,
        decoder=args.decoder, encoder=args.encoder,
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
    p.add_argument("-y", "--force", action="store_true",
                   help="overwrite output files that exist already (default: refuse, before any work)")

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
    """`streamsr enhance`: the API's enhance_video with the command line's options, a progress bar and a summary."""
    progress = ProgressBar(total=None)
    try:
        with termination_as_interrupt():
            result = enhance_video(
                args.input, args.output, model=args.model, scale=args.scale, engine=args.engine,
                precision=args.precision, threads=args.threads, batch=args.batch, codec=args.codec,
                preset=args.preset, crf=args.crf, pix_fmt=args.pix_fmt, compare=args.compare, force=args.force,
                on_decode_error=args.on_decode_error, deinterlace=args.deinterlace,
                memory_budget=args.memory_budget, max_pixels=args.max_pixels, decoder=args.decoder,
                encoder=args.encoder, progress=progress,
            )
    except KeyboardInterrupt as e:
        progress.finish()
        print(f"streamsr: interrupted by {interrupt_name(e)}: nothing was written", file=sys.stderr)
        return interrupt_exit_code(e)
    progress.finish()
    if result.interrupted:
        return _report_interrupted(args, result)
    _warn_about_input(args, result)
    s = result.stats
    rows = [
        ("input", str(args.input)),
        ("output", str(args.output)),
        ("model", f"{result.model} on {result.backend}" + (f" ({result.model_rule})" if result.model_rule else "")),
        *([("codecs", f"decode {result.decoder}, encode {result.encoder}")] if result.encoder else []),
        ("frames", f"{s.frames}" + (f" of {result.frames_expected}" if result.frames_expected else "")),
        ("wall time", f"{s.wall_s:.2f} s"),
        ("speed", f"{s.fps:.2f} fps"),
    ]
    rows += [(f"{stage} (busy)", f"{ms:.1f} ms/frame") for stage, ms in s.stage_ms_per_frame.items()]
    if result.memory is not None:
        rows.append(("memory", result.memory.describe()))
    print(table(rows))
    return _report_image_failures(args, result)


def _report_interrupted(args: argparse.Namespace, result: EnhanceResult) -> int:
    signame = result.interrupted_by or "SIGINT"
    done = result.stats.frames
    if done:
        what = "images" if args.output.is_dir() else "frames"
        print(f"streamsr: interrupted by {signame}: {args.output} holds the {done} {what} done", file=sys.stderr)
    else:
        print(f"streamsr: interrupted by {signame} before the first frame: nothing was written", file=sys.stderr)
    return 128 + _signum(signame)


def _signum(signame: str) -> int:
    import signal

    return int(getattr(signal, signame, signal.SIGINT))


def _warn_about_input(args: argparse.Namespace, result: EnhanceResult) -> None:
    """Frames lost or changed on the way in: one line each on stderr, the exit status stays 0."""
    if result.decode is not None and not result.decode.clean:
        print(f"streamsr: warning: {args.input}: {result.decode.describe()} "
              "(--on-decode-error fail makes this an error)", file=sys.stderr)
    if result.size_changes:
        first = result.size_changes[0]
        print(f"streamsr: warning: {args.input}: the frame size changes {len(result.size_changes)} time(s), first at "
              f"frame {first.index} to {first.size[0]}x{first.size[1]}; those frames are scaled to fit the first "
              "frame's size, aspect ratio kept, on black", file=sys.stderr)
    for note in result.notes:
        print(f"streamsr: warning: {note}", file=sys.stderr)


def _report_image_failures(args: argparse.Namespace, result: EnhanceResult) -> int:
    """Each image that could not be read, named, then a summary; exit 2 when there was any."""
    if not result.failures:
        return 0
    for _name, reason in result.failures:
        print(f"streamsr: error: {reason}", file=sys.stderr)
    total = result.frames_expected or len(result.failures)
    done = result.stats.frames
    print(f"streamsr: error: {len(result.failures)} of {total} images could not be read (named above); "
          f"{done} written to {args.output}" if done else
          f"streamsr: error: none of the {total} images could be read (named above); nothing was written",
          file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="streamsr: %(levelname)s: %(message)s")
    install_log_masking()  # every record, FFmpeg's forwarded messages included, has its secrets masked
    try:
        if args.command == "enhance":
            return run_enhance(args)
        return importlib.import_module(args._module).run(args)
    except StreamSRError as e:
        if args.debug:
            raise
        print(f"streamsr: error: {mask_text(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        print(f"streamsr: interrupted by {interrupt_name(e)}", file=sys.stderr)
        return interrupt_exit_code(e)
    except Exception as e:  # noqa: BLE001 - one line for the user, the traceback with --debug
        if args.debug:
            raise
        print(f"streamsr: internal error: {type(e).__name__}: {mask_text(str(e))} (rerun with --debug for details)",
              file=sys.stderr)
        return 1
