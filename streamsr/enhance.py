"""The `streamsr enhance` job: a file, an image or a folder of images in, the upscaled result out.

Everything that can be checked before the model loads is: the output path (writable, not an
input, not an existing file unless ``force``), the encoder options, and for video the input's
structure (truncation) and whether the output container can hold the streams.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from streamsr import zoo
from streamsr.backends import create_backend
from streamsr.backends.base import Backend
from streamsr.errors import ConfigError, InputError, OutputError
from streamsr.pipeline.pipeline import OnFrame, Pipeline, PipelinePolicy
from streamsr.pipeline.stats import RunStats
from streamsr.postprocess import compare, finish
from streamsr.signals import interrupt_name
from streamsr.sinks.atomic import check_output_path, sweep_stale
from streamsr.sinks.av_sink import AvFileSink, EncodeSettings, StreamTiming
from streamsr.sinks.preflight import check_encode_settings, check_video_output
from streamsr.sources.av_source import AvFileSource
from streamsr.sources.conform import FirstSize, SizeChange
from streamsr.sources.image_source import IMAGE_SUFFIXES, is_image_input
from streamsr.sources.integrity import DECODE_ERROR_POLICIES, DecodeErrorPolicy, DecodeReport

log = logging.getLogger(__name__)

SCALES = (2, 3, 4)


@dataclass(frozen=True)
class EnhanceOptions:
    scale: int = 2
    model: str | None = None
    engine: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    batch: int = 1
    max_pixels: int | None = None  # memory ceiling per inference call; larger inputs are tiled
    encode: EncodeSettings = EncodeSettings()
    compare: bool = False
    force: bool = False  # replace existing output files
    on_decode_error: DecodeErrorPolicy = "warn"  # frames that cannot be decoded: warn and go on, or fail


@dataclass(frozen=True)
class EnhanceResult:
    stats: RunStats
    backend: str
    model: str
    output: Path
    frames_expected: int | None
    interrupted: bool = False
    interrupted_by: str | None = None  # the signal's name, e.g. "SIGTERM"
    decode: DecodeReport | None = None  # frames the decoder lost or damaged (video)
    size_changes: list[SizeChange] = field(default_factory=list)  # video frames fitted to the first size
    failures: list[tuple[str, str]] = field(default_factory=list)  # images that could not be read: (name, why)
    notes: list[str] = field(default_factory=list)  # what was not processed, and why


def open_backend(options: EnhanceOptions) -> Backend:
    check_options(options)
    card = zoo.resolve_model(options.model, options.scale)
    backend = create_backend(options.engine, card, threads=options.threads, precision=options.precision)
    backend.max_pixels = options.max_pixels
    return backend


def check_options(options: EnhanceOptions) -> None:
    if options.scale not in SCALES:
        raise ConfigError(f"unsupported scale {options.scale} (choose from {', '.join(map(str, SCALES))})")
    if options.batch < 1:
        raise ConfigError(f"--batch must be at least 1, not {options.batch}")
    if options.on_decode_error not in DECODE_ERROR_POLICIES:
        raise ConfigError(f"--on-decode-error takes {' or '.join(DECODE_ERROR_POLICIES)}, "
                          f"not {options.on_decode_error!r}")


def enhance(input_path: Path, output: Path, options: EnhanceOptions, on_frame: OnFrame | None = None) -> EnhanceResult:
    """Upscale ``input_path`` into ``output``. Raises StreamSRError subclasses for bad input.

    ``on_frame(done)`` is called after each written frame; if it has a ``total`` attribute,
    that is set to the expected frame count (None when unknown) before the first frame.
    """
    check_options(options)
    if str(input_path) == "-":
        raise InputError("reading from a pipe (-) is not supported: save the input to a file first")
    if str(output) == "-":
        raise OutputError("writing to a pipe (-o -) is not supported: give an output file or folder name")
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    if is_image_input(input_path):
        from streamsr.enhance_images import enhance_images

        return enhance_images(input_path, output, options, on_frame)
    return _enhance_video(input_path, output, options, on_frame)


def post_process(options: EnhanceOptions):
    return partial(compare, scale=options.scale) if options.compare else partial(finish, scale=options.scale)


def pipeline_policy(options: EnhanceOptions) -> PipelinePolicy:
    return PipelinePolicy(max_batch=options.batch, queue_size=max(8, 2 * options.batch),
                          keep_source_planes=options.compare)


def _enhance_video(input_path: Path, output: Path, options: EnhanceOptions, on_frame: OnFrame | None) -> EnhanceResult:
    check_output_path(output, [input_path], force=options.force)
    if output.suffix.lower() in IMAGE_SUFFIXES or not output.suffix:
        raise OutputError(f"a video input needs a video output file name (.mp4, .mkv, .mov), not {output}")
    check_encode_settings(options.encode)
    with AvFileSource(input_path, on_decode_error=options.on_decode_error) as source:
        info = source.info
        timing = _timing(source)
        check_video_output(output, _output_size(info.width, info.height, options), timing, options.encode,
                           copy_from=input_path)
        sweep_stale(output.parent if str(output.parent) else Path("."))
        with open_backend(options) as backend:
            sink = AvFileSink(output, timing, options.encode, copy_from=input_path)
            sink.overwrite = options.force
            frames = FirstSize(source, full_range=info.pix_fmt == "yuvj420p" or info.colour_range == "2")
            announce_total(on_frame, info.frames)
            pipeline = Pipeline(frames, backend, sink, pipeline_policy(options), post=post_process(options),
                                on_frame=on_frame)
            stats, interrupted_by = run_and_commit(pipeline, sink)
            if interrupted_by is None and info.frames and stats.frames != info.frames:
                log.warning("wrote %d frames but the container announced %d", stats.frames, info.frames)
            return EnhanceResult(stats, backend.describe(), backend.card.name, output, info.frames,
                                 interrupted=interrupted_by is not None, interrupted_by=interrupted_by,
                                 decode=source.report, size_changes=frames.changes)


def _timing(source: AvFileSource) -> StreamTiming:
    info, cc = source.info, source.codec_context
    return StreamTiming(
        time_base=info.time_base or (1 / info.rate),
        rate=info.rate,
        colorspace=_enum(cc.colorspace),
        color_range=2 if info.pix_fmt == "yuvj420p" else _enum(cc.color_range),
        color_primaries=_enum(cc.color_primaries),
        color_trc=_enum(cc.color_trc),
        rotation=info.rotation,
    )


def _output_size(width: int, height: int, options: EnhanceOptions) -> tuple[int, int]:
    w, h = width * options.scale, height * options.scale
    w, h = w + w % 2, h + h % 2  # 4:2:0 padding, as the sink does
    return (3 * w if options.compare else w), h


def run_and_commit(pipeline: Pipeline, sink) -> tuple[RunStats, str | None]:
    """Run to the end and commit the output; on Ctrl-C or a termination signal keep a valid
    file of the frames done (or nothing) and return the signal's name."""
    try:
        stats = pipeline.run()
    except KeyboardInterrupt as e:
        sink.close(complete=False)
        written = getattr(sink, "frames", 0)
        return RunStats(frames=written, wall_s=0.0), interrupt_name(e)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return stats, None


def announce_total(on_frame: OnFrame | None, total: int | None) -> None:
    if on_frame is not None and hasattr(on_frame, "total"):
        on_frame.total = total


def _enum(value: object) -> int | None:
    return None if value is None else int(value)
