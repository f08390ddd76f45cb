"""The `streamsr enhance` job: a file, an image or a folder of images in, the upscaled result out.

Everything that can be checked before the model loads is: the output path (writable, not an
input, not an existing file unless ``force``), the encoder options, and for video the input's
structure (truncation) and whether the output container can hold the streams. The run then
fits a memory budget (streamsr.memory): batches are capped, large frames tiled, queues bounded.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from streamsr import zoo
from streamsr.backends import create_backend, runs_on_gpu
from streamsr.backends.base import Backend
from streamsr.carry import output_timing
from streamsr.codec_qp import stream_mean_qp
from streamsr.colour import LumaScale
from streamsr.errors import ConfigError, InputError, OutputError
from streamsr.hwcodecs import DECODER_CHOICES, ENCODER_CHOICES, choose_decoder, choose_encoder
from streamsr.input_kind import video_kind
from streamsr.memory import MemoryPlan, default_budget, plan_memory
from streamsr.pipeline.pipeline import OnFrame, Pipeline, PipelinePolicy
from streamsr.pipeline.stats import RunStats
from streamsr.postprocess import compare, finish
from streamsr.signals import interrupt_name
from streamsr.sinks.atomic import check_output_path, sweep_stale
from streamsr.sinks.av_sink import AvFileSink, EncodeSettings
from streamsr.sinks.preflight import check_encode_settings, check_video_output
from streamsr.sources.av_source import AvFileSource
from streamsr.sources.conform import FirstSize, SizeChange
from streamsr.sources.deinterlace import DeinterlaceMode
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
    deinterlace: DeinterlaceMode = "auto"  # auto | frame | field | off (sources/deinterlace.py)
    memory_budget: int | None = None  # bytes of frame data; None: from the machine (streamsr.memory)
    decoder: str = "auto"  # auto | cpu | nvdec (streamsr/hwcodecs.py)
    encoder: str = "auto"  # auto | cpu | nvenc


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
    memory: MemoryPlan | None = None
    decoder: str | None = None  # the FFmpeg decoder and encoder that ran (h264, h264_cuvid, libx264, ...)
    encoder: str | None = None
    model_rule: str | None = None  # why this model, when no --model was given and the input chose it


def open_backend(options: EnhanceOptions, bit_depth: int = 8) -> Backend:
    check_options(options)
    card = zoo.resolve_model(options.model, options.scale)
    backend = create_backend(options.engine, card, threads=options.threads, precision=options.precision,
                             bit_depth=bit_depth)
    backend.max_pixels = options.max_pixels  # until a memory plan lowers it
    return backend


def check_options(options: EnhanceOptions) -> None:
    if options.scale not in SCALES:
        raise ConfigError(f"unsupported scale {options.scale} (choose from {', '.join(map(str, SCALES))})")
    if options.batch < 1:
        raise ConfigError(f"--batch must be at least 1, not {options.batch}")
    if options.on_decode_error not in DECODE_ERROR_POLICIES:
        raise ConfigError(f"--on-decode-error takes {' or '.join(DECODE_ERROR_POLICIES)}, "
                          f"not {options.on_decode_error!r}")
    if options.decoder not in DECODER_CHOICES:
        raise ConfigError(f"unknown --decoder {options.decoder!r} (choose from {', '.join(DECODER_CHOICES)})")
    if options.encoder not in ENCODER_CHOICES:
        raise ConfigError(f"unknown --encoder {options.encoder!r} (choose from {', '.join(ENCODER_CHOICES)})")


def enhance(
    input_path: Path,
    output: Path,
    options: EnhanceOptions,
    on_frame: OnFrame | None = None,
    *,
    backend: Backend | None = None,
    open_source: Callable[[Path], AvFileSource] | None = None,
    copy_streams: bool = True,
) -> EnhanceResult:
    """Upscale ``input_path`` into ``output``. Raises StreamSRError subclasses for bad input.

    ``on_frame(done)`` is called after each written frame; if it has a ``total`` attribute,
    that is set to the expected frame count (None when unknown) before the first frame.

    For jobs of many files (streamsr.batch): ``backend`` is an open backend to use (and leave
    open) instead of loading the model again; ``open_source`` makes the video source (e.g. one
    segment of the file) instead of ``AvFileSource``; ``copy_streams=False`` writes the video
    alone, without the input's audio and subtitles.
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

        return enhance_images(input_path, output, options, on_frame, backend)
    return _enhance_video(input_path, output, options, on_frame, backend, open_source, copy_streams)


def post_process(options: EnhanceOptions):
    return partial(compare, scale=options.scale) if options.compare else partial(finish, scale=options.scale)


def pipeline_policy(options: EnhanceOptions, plan: MemoryPlan) -> PipelinePolicy:
    return PipelinePolicy(max_batch=plan.max_batch, queue_size=plan.queue_frames, queue_bytes=plan.queue_bytes,
                          max_pixels=plan.max_pixels, keep_source_planes=options.compare)


def plan_run(options: EnhanceOptions, backend: Backend, width: int, height: int,
             sample_bytes: int = 1, chroma_share: float = 0.5) -> MemoryPlan:
    """Fit the run in the memory budget: batch cap, tiling and queue lengths (streamsr.memory)."""
    budget = options.memory_budget or default_budget()
    plan = plan_memory(budget, width, height, options.scale, backend.card, sample_bytes=sample_bytes,
                       chroma_share=chroma_share, batch=options.batch, max_pixels=options.max_pixels,
                       in_flight=getattr(backend, "in_flight", 1))
    if plan.max_batch < options.batch:
        log.info("--batch %d capped to %d by the memory budget", options.batch, plan.max_batch)
    backend.max_pixels = plan.max_pixels
    log.debug("memory plan: %s", plan.describe())
    return plan


def opened_backend(options: EnhanceOptions, backend: Backend | None, bit_depth: int = 8) -> AbstractContextManager[Backend]:
    """The caller's open backend (left open), or a new one closed at the end."""
    return nullcontext(backend) if backend is not None else open_backend(options, bit_depth)


def _enhance_video(
    input_path: Path, output: Path, options: EnhanceOptions, on_frame: OnFrame | None,
    backend: Backend | None = None, open_source: Callable[[Path], AvFileSource] | None = None,
    copy_streams: bool = True,
) -> EnhanceResult:
    check_output_path(output, [input_path], force=options.force)
    if output.suffix.lower() in IMAGE_SUFFIXES or not output.suffix:
        raise OutputError(f"a video input needs a video output file name (.mp4, .mkv, .mov), not {output}")
    check_options(options)
    check_encode_settings(options.encode)
    copy_from = input_path if copy_streams else None
    on_gpu = options.decoder == "nvdec" or options.encoder == "nvenc" or (
        "auto" in (options.decoder, options.encoder) and runs_on_gpu(options.engine))
    settings = replace(options.encode, nvenc=choose_encoder(options.encoder, options.encode.codec, on_gpu))
    make_source = open_source or partial(AvFileSource, on_decode_error=options.on_decode_error,
                                         deinterlace=options.deinterlace,
                                         hw_decoder=partial(choose_decoder, options.decoder, on_gpu=on_gpu))
    with make_source(input_path) as source:
        info, layout = source.info, source.layout
        timing = output_timing(source, output)
        check_video_output(output, _output_size(info.width, info.height, options), timing, settings,
                           copy_from=copy_from)
        sweep_stale(output.parent if str(output.parent) else Path("."))
        model_rule = None
        if options.model is None and backend is None:
            model, model_rule = default_for_video(input_path, options.scale)
            options = replace(options, model=model)
        with opened_backend(options, backend, layout.bits) as backend:
            _set_luma(backend, LumaScale(layout.bits, source.full_range))
            plan = plan_run(options, backend, info.width, info.height, 1 if layout.bits <= 8 else 2,
                            0.0 if layout.gray else 2 / (1 << (layout.log2_chroma_w + layout.log2_chroma_h)))
            sink = AvFileSink(output, timing, settings, copy_from=copy_from)
            sink.overwrite = options.force
            frames = FirstSize(source, full_range=source.full_range)
            announce_total(on_frame, info.frames)
            pipeline = Pipeline(frames, backend, sink, pipeline_policy(options, plan), post=post_process(options),
                                on_frame=on_frame)
            stats, interrupted_by = run_and_commit(pipeline, sink)
            if interrupted_by is None and info.frames and stats.frames != info.frames:
                log.warning("wrote %d frames but the container announced %d", stats.frames, info.frames)
            return EnhanceResult(stats, backend.describe(), backend.card.name, output, info.frames,
                                 interrupted=interrupted_by is not None, interrupted_by=interrupted_by,
                                 decode=source.report, size_changes=frames.changes, memory=plan,
                                 decoder=getattr(source, "decoder_name", None), encoder=settings.encoder,
                                 model_rule=model_rule)


def default_for_video(path: Path, scale: int) -> tuple[str, str]:
    """The default model for this file, from how hard its H.264 stream was quantised, and why
    (``enhance`` and ``batch`` without ``--model``)."""
    qp = stream_mean_qp(path)
    kind = video_kind(qp, scale)
    why = f"mean H.264 QP {qp:.1f}" if qp is not None else "no H.264 quantisers to read"
    return zoo.default_model(scale, kind), f"the default for {kind} video: {why}"


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


def _set_luma(backend: Backend, luma: LumaScale) -> None:
    """Tell the backend how to read deeper planes; the GPU engines move uint8 planes only."""
    if luma.bits > 8 and getattr(backend, "upscales_chroma", False):
        raise ConfigError(f"the {backend.name} engine handles 8-bit video only and this input is {luma.bits}-bit: "
                          "use a CPU engine (--engine openvino or onnxruntime)")
    backend.luma = luma
