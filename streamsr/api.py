"""The Python API: the model inside your own OpenCV or PyAV loop, and whole files in one call.

    import cv2, streamsr

    with streamsr.Upscaler(scale=2) as sr:          # the default model, the best engine here
        big = sr.upscale(cv2.imread("frame.png"))     # BGR in, BGR out (layout="rgb" for RGB)

    stats = streamsr.enhance_video("in.mp4", "out.mp4", scale=2, progress=print)

``Upscaler`` runs the same backends, colour handling and chroma upscaling as ``streamsr
enhance`` (the CLI is a thin shell over :func:`enhance_video`). Images are converted with
full-range BT.601, the model runs on the luma and the chroma is upscaled with bicubic;
``upscale_frame`` keeps a PyAV frame's format (``yuvj*`` comes back as the same ``yuv*`` layout
tagged full range), bit depth, timestamps and colour tags.

Errors are the ``StreamSRError`` family (``streamsr.errors``); nothing is printed, logging
goes through the ``streamsr`` loggers.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from streamsr.backends.base import Backend
from streamsr.colour import LumaScale, bgr_to_planes, gray_to_planes, planes_to_bgr
from streamsr.enhance import EnhanceOptions, EnhanceResult, enhance, open_backend
from streamsr.errors import InputError
from streamsr.postprocess import finish
from streamsr.sinks.av_sink import EncodeSettings
from streamsr.types import Frame, ModelCard

if TYPE_CHECKING:
    import av

Layout = Literal["bgr", "rgb"]
Progress = Callable[[int, "int | None"], None]  # (frames done, frames expected or None)


class Upscaler:
    """A loaded model: ``upscale(image)``, ``upscale_batch(images)``, ``upscale_frame(frame)``.

    ``model``: a shipped name (``"espcn"``, ``"repsr_cctv_x2"``) or a card path; None picks the
    compressed-input default, since frames in a loop are decoded video (README: which model
    when); for clean pictures ``model="repsr"`` is the better choice. ``engine``: ``auto`` or a
    backend name; ``precision``: ``auto`` or fp32/fp16/bf16/int8. Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        model: str | None = None,
        scale: int = 2,
        engine: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
    ) -> None:
        options = EnhanceOptions(scale=scale, model=model, engine=engine, precision=precision, threads=threads)
        self.scale = scale
        self._backend: Backend | None = open_backend(options)

    @property
    def card(self) -> ModelCard:
        """The loaded model's card (name, scale, cost, measured quality)."""
        return self._open().card

    @property
    def engine(self) -> str:
        """The engine that runs it, e.g. ``openvino (fp32, 2 threads in 2 streams)``."""
        return self._open().describe()

    def upscale(self, image: np.ndarray, layout: Layout = "bgr") -> np.ndarray:
        """A uint8 or uint16 image, grey (H, W), colour (H, W, 3) or with alpha (H, W, 4), upscaled.

        Colour images are BGR (OpenCV) or, with ``layout="rgb"``, RGB; the result has the
        input's layout, channels and sample type.
        """
        return self.upscale_batch([image], layout)[0]

    def upscale_batch(self, images: Sequence[np.ndarray], layout: Layout = "bgr") -> list[np.ndarray]:
        """Several images, in order. Images of one size and type run as one batch; a batch of
        mixed sizes is grouped by size (each group one batch), never resized."""
        frames = [_image_frame(_check_image(img, i), layout) for i, img in enumerate(images)]
        out = self._run(frames)
        return [_frame_image(f, img, layout) for f, img in zip(out, images)]

    def upscale_frame(self, frame: av.VideoFrame) -> av.VideoFrame:
        """A PyAV frame upscaled: same pixel format (bit depth and chroma), pts, time base and colour tags."""
        from streamsr.pixfmt import frame_from_planes, is_full_range_format, layout_of, read_planes

        layout = layout_of(frame.format)
        if layout is None:  # RGB formats: through the image path
            image = frame.to_ndarray(format="bgr24")
            out = av_frame_from(self.upscale(image), "bgr24")
        else:
            full = is_full_range_format(frame.format.name) or _int(frame.color_range) == 2
            src = Frame(index=0, planes=read_planes(frame, layout), bit_depth=layout.bits, full_range=full)
            (done,) = self._run([src])
            out = frame_from_planes(done.planes, layout)  # yuvj* comes back as yuv*, tagged full range
            if full:
                out.color_range = 2
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
        for tag in ("colorspace", "color_primaries", "color_trc") + (() if layout is not None else ("color_range",)):
            setattr(out, tag, getattr(frame, tag))
        if layout is not None and not full:
            out.color_range = frame.color_range
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------
    def _open(self) -> Backend:
        if self._backend is None:
            raise InputError("this Upscaler is closed")
        return self._backend

    def _run(self, frames: list[Frame]) -> list[Frame]:
        """Luma through the model in groups of one size and sample type, chroma upscaled classically."""
        backend = self._open()
        out: list[Frame | None] = [None] * len(frames)
        groups: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault((f.planes[0].shape, f.planes[0].dtype.str, f.bit_depth, f.full_range), []).append(i)
        for (_, _, bits, full), members in groups.items():
            backend.luma = LumaScale(bits, full)
            luma = backend.run(np.stack([frames[i].planes[0] for i in members]))
            for i, y in zip(members, luma):
                f = frames[i]
                out[i] = finish(replace(f, planes=(y, f.planes[1], f.planes[2])), self.scale)
        return out  # type: ignore[return-value]


def enhance_video(
    src: str | Path,
    dst: str | Path,
    *,
    model: str | None = None,
    scale: int = 2,
    engine: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    batch: int = 1,
    codec: str = "h264",
    preset: str = "veryfast",
    crf: int = 18,
    pix_fmt: str | None = None,
    compare: bool = False,
    force: bool = False,
    on_decode_error: str = "warn",
    deinterlace: str = "auto",
    memory_budget: int | None = None,
    max_pixels: int | None = None,
    decoder: str = "auto",
    encoder: str = "auto",
    progress: Progress | None = None,
) -> EnhanceResult:
    """Upscale a video file (or an image or a folder of images) into ``dst``, as ``streamsr enhance`` does.

    Returns the run's result: ``stats`` (frames, wall time, FPS, each stage's busy time),
    the engine and model used, and what was lost or changed on the way in. With ``model`` None
    the input chooses between the clean and the compressed default, and ``model_rule`` says why
    (README: the input decides between the two). ``progress(done,
    total)`` is called after every frame written (``total`` is None when the container does
    not say). The output is written atomically; an existing ``dst`` is refused unless ``force``.
    ``decoder``/``encoder`` (auto, cpu, nvdec/nvenc) choose NVIDIA's video codecs
    (streamsr/hwcodecs.py); the result's ``decoder`` and ``encoder`` say which ran.
    """
    options = EnhanceOptions(
        scale=scale, model=model, engine=engine, precision=precision, threads=threads, batch=batch,
        max_pixels=max_pixels, encode=EncodeSettings(codec=codec, preset=preset, crf=crf, pix_fmt=pix_fmt),
        compare=compare, force=force, on_decode_error=on_decode_error,  # type: ignore[arg-type]
        deinterlace=deinterlace, memory_budget=memory_budget,  # type: ignore[arg-type]
        decoder=decoder, encoder=encoder,
    )
    return enhance(Path(src), Path(dst), options, on_frame=_ProgressAdapter(progress) if progress else None)


class _ProgressAdapter:
    """``on_frame`` of the pipeline (done, with a ``total`` attribute) as ``progress(done, total)``."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.total: int | None = None

    def __call__(self, done: int) -> None:
        self.progress(done, self.total)


def av_frame_from(image: np.ndarray, fmt: str) -> av.VideoFrame:
    import av

    return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)


def _check_image(image: np.ndarray, index: int) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputError(f"image {index}: expected a numpy array, got {type(image).__name__}")
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"image {index}: expected uint8 or uint16 samples, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise InputError(f"image {index}: expected (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    if min(image.shape[:2]) < 1:
        raise InputError(f"image {index} is empty: shape {image.shape}")
    return image


def _image_frame(image: np.ndarray, layout: Layout) -> Frame:
    bits = 16 if image.dtype == np.uint16 else 8
    if image.ndim == 2:
        return Frame(index=0, planes=gray_to_planes(image), bit_depth=bits, full_range=True)
    colour = np.ascontiguousarray(image[..., :3] if layout == "bgr" else image[..., 2::-1])
    alpha = image[..., 3].copy() if image.shape[2] == 4 else None
    return Frame(index=0, planes=bgr_to_planes(colour), alpha=alpha, bit_depth=bits, full_range=True)


def _frame_image(frame: Frame, like: np.ndarray, layout: Layout) -> np.ndarray:
    import cv2

    if like.ndim == 2:
        return frame.planes[0]
    bgr = planes_to_bgr(frame.planes)
    out = bgr if layout == "bgr" else np.ascontiguousarray(bgr[..., ::-1])
    if like.shape[2] == 4:
        h, w = out.shape[:2]
        alpha = cv2.resize(like[..., 3], (w, h), interpolation=cv2.INTER_CUBIC)
        out = np.dstack([out, alpha])
    return out


def _int(value: object) -> int | None:
    try:
        return None if value is None else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
