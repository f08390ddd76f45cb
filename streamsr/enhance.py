"""The `streamsr enhance` job: a file, an image or a folder of images in, the upscaled result out."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from streamsr import zoo
from streamsr.backends import create_backend
from streamsr.backends.base import Backend
from streamsr.carry import output_timing
from streamsr.colour import LumaScale
from streamsr.errors import ConfigError, InputError, OutputError
from streamsr.memory import MemoryPlan, default_budget, plan_memory
from streamsr.pipeline.pipeline import OnFrame, Pipeline, PipelinePolicy
from streamsr.pipeline.stats import RunStats
from streamsr.postprocess import compare, finish
from streamsr.sinks.atomic import check_output_path
from streamsr.sinks.av_sink import AvFileSink, EncodeSettings
from streamsr.sinks.image_sink import ImageFolderSink
from streamsr.sources.av_source import AvFileSource
from streamsr.sources.deinterlace import DeinterlaceMode
from streamsr.sources.image_source import IMAGE_SUFFIXES, ImageSource, is_image_input

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
    deinterlace: DeinterlaceMode = "auto"  # auto | frame | field | off (sources/deinterlace.py)
    memory_budget: int | None = None  # bytes of frame data; None: from the machine (streamsr.memory)


@dataclass(frozen=True)
class EnhanceResult:
    stats: RunStats
    backend: str
    model: str
    output: Path
    frames_expected: int | None
    interrupted: bool = False
    memory: MemoryPlan | None = None


def open_backend(options: EnhanceOptions, bit_depth: int = 8) -> Backend:
    if options.scale not in SCALES:
        raise ConfigError(f"unsupported scale {options.scale} (choose from {', '.join(map(str, SCALES))})")
    if options.batch < 1:
        raise ConfigError(f"--batch must be at least 1, not {options.batch}")
    card = zoo.resolve_model(options.model, options.scale)
    backend = create_backend(options.engine, card, threads=options.threads, precision=options.precision,
                             bit_depth=bit_depth)
    backend.max_pixels = options.max_pixels  # until a memory plan lowers it
    return backend


def enhance(input_path: Path, output: Path, options: EnhanceOptions, on_frame: OnFrame | None = None) -> EnhanceResult:
    """Upscale ``input_path`` into ``output``. Raises StreamSRError subclasses for bad input.

    ``on_frame(done)`` is called after each written frame; if it has a ``total`` attribute,
    that is set to the expected frame count (None when unknown) before the first frame.
    """
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    if is_image_input(input_path):
        return _enhance_images(input_path, output, options, on_frame)
    return _enhance_video(input_path, output, options, on_frame)


def _post(options: EnhanceOptions):
    return partial(compare, scale=options.scale) if options.compare else partial(finish, scale=options.scale)


def _policy(options: EnhanceOptions, plan: MemoryPlan) -> PipelinePolicy:
    return PipelinePolicy(max_batch=plan.max_batch, queue_size=plan.queue_frames, queue_bytes=plan.queue_bytes,
                          max_pixels=plan.max_pixels, keep_source_planes=options.compare)


def _plan(options: EnhanceOptions, backend: Backend, width: int, height: int,
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


def _enhance_video(input_path: Path, output: Path, options: EnhanceOptions, on_frame: OnFrame | None) -> EnhanceResult:
    check_output_path(output, [input_path])
    if output.suffix.lower() in IMAGE_SUFFIXES or not output.suffix:
        raise OutputError(f"a video input needs a video output file name (.mp4, .mkv, .mov), not {output}")
    with AvFileSource(input_path, deinterlace=options.deinterlace) as source, \
            open_backend(options, source.layout.bits) as backend:
        info = source.info
        timing = output_timing(source, output)
        _set_luma(backend, LumaScale(source.layout.bits, source.full_range))
        layout = source.layout
        plan = _plan(options, backend, info.width, info.height, 1 if layout.bits <= 8 else 2,
                     0.0 if layout.gray else 2 / (1 << (layout.log2_chroma_w + layout.log2_chroma_h)))
        sink = AvFileSink(output, timing, options.encode, copy_from=input_path)
        _announce_total(on_frame, info.frames)
        pipeline = Pipeline(source, backend, sink, _policy(options, plan), post=_post(options), on_frame=on_frame)
        stats, interrupted = _run(pipeline, sink)
        if not interrupted and info.frames and stats.frames != info.frames:
            log.warning("wrote %d frames but the container announced %d", stats.frames, info.frames)
        return EnhanceResult(stats, backend.describe(), backend.card.name, output, info.frames, interrupted, plan)


def _enhance_images(input_path: Path, output: Path, options: EnhanceOptions, on_frame: OnFrame | None) -> EnhanceResult:
    source = ImageSource(input_path)
    single_file_target = input_path.is_file() and output.suffix.lower() in IMAGE_SUFFIXES
    if single_file_target:
        check_output_path(output, [input_path])
        folder, target = output.parent, output
    else:
        if input_path.is_dir() and output.suffix.lower() in IMAGE_SUFFIXES:
            raise OutputError(f"a folder of images needs an output folder, not the file name {output}")
        folder, target = output, None
        if not folder.exists():
            if not folder.parent.exists():
                raise OutputError(f"output directory does not exist: {folder.parent}")
            try:
                folder.mkdir()
            except OSError as e:
                raise OutputError(f"cannot create the output folder {folder}: {e.strerror or e}") from None
        elif not folder.is_dir():
            raise OutputError(f"an image input needs an output folder, and {folder} is a file")
        for file in source.files:
            check_output_path(folder / file.name, [file])
    with open_backend(options) as backend:
        if getattr(backend, "upscales_chroma", False):  # the GPU engines move uint8 planes only
            source.max_bits = 8
        sink = ImageFolderSink(folder, target)
        _announce_total(on_frame, len(source.files))
        # sizes vary: queues are bounded in bytes, batches in pixels, large images are tiled
        plan = _plan(options, backend, 1, 1, chroma_share=2.0)
        pipeline = Pipeline(source, backend, sink, _policy(options, plan), post=_post(options), on_frame=on_frame)
        stats, interrupted = _run(pipeline, sink)
        return EnhanceResult(stats, backend.describe(), backend.card.name, output, len(source.files), interrupted,
                             plan)


def _run(pipeline: Pipeline, sink) -> tuple[RunStats, bool]:
    """Run to the end and commit the output; on Ctrl-C keep a valid file of the frames done."""
    try:
        stats = pipeline.run()
    except KeyboardInterrupt:
        sink.close(complete=False)
        written = getattr(sink, "frames", 0)
        return RunStats(frames=written, wall_s=0.0), True
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return stats, False


def _announce_total(on_frame: OnFrame | None, total: int | None) -> None:
    if on_frame is not None and hasattr(on_frame, "total"):
        on_frame.total = total


def _set_luma(backend: Backend, luma: LumaScale) -> None:
    """Tell the backend how to read deeper planes; the GPU engines move uint8 planes only."""
    if luma.bits > 8 and getattr(backend, "upscales_chroma", False):
        raise ConfigError(f"the {backend.name} engine handles 8-bit video only and this input is {luma.bits}-bit: "
                          "use a CPU engine (--engine openvino or onnxruntime)")
    backend.luma = luma
