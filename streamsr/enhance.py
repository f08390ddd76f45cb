"""The `streamsr enhance` job: a file, an image or a folder of images in, the upscaled result out."""
from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from streamsr import zoo
from streamsr.backends import create_backend
from streamsr.backends.base import Backend
from streamsr.errors import ConfigError, InputError, OutputError
from streamsr.pipeline.pipeline import OnFrame, Pipeline, PipelinePolicy
from streamsr.pipeline.stats import RunStats
from streamsr.postprocess import compare, finish
from streamsr.sinks.atomic import check_output_path
from streamsr.sinks.av_sink import AvFileSink, EncodeSettings, StreamTiming
from streamsr.sinks.image_sink import ImageFolderSink
from streamsr.sources.av_source import AvFileSource
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


@dataclass(frozen=True)
class EnhanceResult:
    stats: RunStats
    backend: str
    model: str
    output: Path
    frames_expected: int | None
    interrupted: bool = False


def open_backend(options: EnhanceOptions) -> Backend:
    if options.scale not in SCALES:
        raise ConfigError(f"unsupported scale {options.scale} (choose from {', '.join(map(str, SCALES))})")
    if options.batch < 1:
        raise ConfigError(f"--batch must be at least 1, not {options.batch}")
    card = zoo.resolve_model(options.model, options.scale)
    backend = create_backend(options.engine, card, threads=options.threads, precision=options.precision)
    backend.max_pixels = options.max_pixels
    return backend


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
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    if is_image_input(input_path):
        return _enhance_images(input_path, output, options, on_frame, backend)
    return _enhance_video(input_path, output, options, on_frame, backend, open_source or AvFileSource, copy_streams)


def _post(options: EnhanceOptions):
    return partial(compare, scale=options.scale) if options.compare else partial(finish, scale=options.scale)


def _policy(options: EnhanceOptions) -> PipelinePolicy:
    return PipelinePolicy(max_batch=options.batch, queue_size=max(8, 2 * options.batch),
                          keep_source_planes=options.compare)


def _opened(options: EnhanceOptions, backend: Backend | None) -> AbstractContextManager[Backend]:
    """The caller's open backend (left open), or a new one closed at the end."""
    return nullcontext(backend) if backend is not None else open_backend(options)


def _enhance_video(input_path: Path, output: Path, options: EnhanceOptions, on_frame: OnFrame | None,
                   backend: Backend | None, open_source: Callable[[Path], AvFileSource],
                   copy_streams: bool) -> EnhanceResult:
    check_output_path(output, [input_path])
    if output.suffix.lower() in IMAGE_SUFFIXES or not output.suffix:
        raise OutputError(f"a video input needs a video output file name (.mp4, .mkv, .mov), not {output}")
    with open_source(input_path) as source, _opened(options, backend) as backend:
        info = source.info
        cc = source.codec_context
        timing = StreamTiming(
            time_base=info.time_base or (1 / info.rate),
            rate=info.rate,
            colorspace=_enum(cc.colorspace),
            color_range=2 if info.pix_fmt == "yuvj420p" else _enum(cc.color_range),
            color_primaries=_enum(cc.color_primaries),
            color_trc=_enum(cc.color_trc),
            rotation=info.rotation,
        )
        sink = AvFileSink(output, timing, options.encode, copy_from=input_path if copy_streams else None)
        _announce_total(on_frame, info.frames)
        pipeline = Pipeline(source, backend, sink, _policy(options), post=_post(options), on_frame=on_frame)
        stats, interrupted = _run(pipeline, sink)
        if not interrupted and info.frames and stats.frames != info.frames:
            log.warning("wrote %d frames but the container announced %d", stats.frames, info.frames)
        return EnhanceResult(stats, backend.describe(), backend.card.name, output, info.frames, interrupted)


def _enhance_images(input_path: Path, output: Path, options: EnhanceOptions, on_frame: OnFrame | None,
                    backend: Backend | None) -> EnhanceResult:
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
    with _opened(options, backend) as backend:
        sink = ImageFolderSink(folder, target)
        _announce_total(on_frame, len(source.files))
        pipeline = Pipeline(source, backend, sink, _policy(options), post=_post(options), on_frame=on_frame)
        stats, interrupted = _run(pipeline, sink)
        return EnhanceResult(stats, backend.describe(), backend.card.name, output, len(source.files), interrupted)


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


def _enum(value: object) -> int | None:
    return None if value is None else int(value)
