"""`streamsr enhance` on an image or a folder of images (with its sub-folders, mirrored).

An image that cannot be read does not stop the others: each failure is recorded by name in
the result, and the CLI names them and exits non-zero at the end. Existing output images
are not replaced unless ``force``; that is checked for all of them before the model loads.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from streamsr import zoo
from streamsr.enhance import (
    EnhanceOptions,
    EnhanceResult,
    announce_total,
    opened_backend,
    pipeline_policy,
    plan_run,
    post_process,
    run_and_commit,
)
from streamsr.backends.base import Backend
from streamsr.errors import InputError, OutputError
from streamsr.pipeline.pipeline import OnFrame, Pipeline
from streamsr.sinks.atomic import check_output_path, same_file, sweep_stale
from streamsr.input_kind import KIND_MEANING, images_kind
from streamsr.sinks.image_sink import ImageFolderSink
from streamsr.sources.image_source import IMAGE_SUFFIXES, ImageSource

_LISTED = 5  # names shown in a message before "..."


def enhance_images(input_path: Path, output: Path, options: EnhanceOptions, on_frame: OnFrame | None,
                   backend: Backend | None = None) -> EnhanceResult:
    if input_path.is_file() and output.suffix.lower() in IMAGE_SUFFIXES:
        check_output_path(output, [input_path], force=options.force)
        source, folder, target, created = ImageSource(input_path), output.parent, output, False
    else:
        if input_path.is_dir() and output.suffix.lower() in IMAGE_SUFFIXES:
            raise OutputError(f"a folder of images needs an output folder, not the file name {output}")
        source, folder, target = ImageSource(input_path, exclude=output), output, None
        _check_folder_targets(source, folder, options.force)
        created = _make_folder(folder)
    model_rule = None
    if options.model is None and backend is None:
        kind = images_kind(source.files)
        options = replace(options, model=zoo.default_model(options.scale, kind))
        model_rule = f"the default for {kind} images: {KIND_MEANING[kind]}"
    for parent in {(target or folder / source.name(f)).parent for f in source.files}:
        if parent.is_dir():
            sweep_stale(parent)
    try:
        with opened_backend(options, backend) as backend:
            if getattr(backend, "upscales_chroma", False):  # the GPU engines move uint8 planes only
                source.max_bits = 8
            sink = ImageFolderSink(folder, target, overwrite=options.force)
            announce_total(on_frame, len(source.files))
            # sizes vary: queues are bounded in bytes, batches in pixels, large images are tiled
            plan = plan_run(options, backend, 1, 1, chroma_share=2.0)
            pipeline = Pipeline(source, backend, sink, pipeline_policy(options, plan), post=post_process(options),
                                on_frame=on_frame)
            stats, interrupted_by = run_and_commit(pipeline, sink)
    finally:
        if created:
            _remove_if_empty(folder)
    if source.failures and input_path.is_file():
        raise InputError(source.failures[0][1])
    return EnhanceResult(stats, backend.describe(), backend.card.name, output, len(source.files),
                         interrupted=interrupted_by is not None, interrupted_by=interrupted_by,
                         failures=source.failures, notes=source.notes, memory=plan, model_rule=model_rule)


def _check_folder_targets(source: ImageSource, folder: Path, force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"an image input needs an output folder, and {folder} is a file")
    existing_parent = folder if folder.exists() else folder.parent
    if not existing_parent.exists():
        raise OutputError(f"output directory does not exist: {existing_parent}")
    if not os.access(existing_parent, os.W_OK | os.X_OK):
        raise OutputError(f"output directory is not writable: {existing_parent}")
    existing = []
    for file in source.files:
        target = folder / source.name(file)
        if same_file(target, file):
            raise OutputError(f"output would overwrite the input: {target}")
        if target.is_dir():
            raise OutputError(f"output is a directory, expected a file: {target}")
        if target.exists() or target.is_symlink():
            existing.append(source.name(file))
    if existing and not force:
        shown = ", ".join(existing[:_LISTED]) + (", ..." if len(existing) > _LISTED else "")
        raise OutputError(f"{len(existing)} of the output images exist already in {folder} ({shown}); "
                          "add --force or -y to overwrite them")


def _make_folder(folder: Path) -> bool:
    """Create the output folder if needed; True when this run created it."""
    if folder.exists():
        return False
    try:
        folder.mkdir()
    except OSError as e:
        raise OutputError(f"cannot create the output folder {folder}: {e.strerror or e}") from None
    return True


def _remove_if_empty(folder: Path) -> None:
    """A folder this run made and left empty (every image failed, or an early interrupt) goes."""
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass
