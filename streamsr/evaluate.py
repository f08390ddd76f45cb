"""PSNR/SSIM of shipped models and of bicubic on folders of HR images (``streamsr eval``'s library).

The protocol (DESIGN.md) is the one of the published tables: the HR image is cropped to a
multiple of the scale, the LR image is MATLAB-bicubic ``imresize(hr, 1/s)`` of the RGB image,
saved as ``uint8``; the bicubic baseline is ``imresize(lr, s)``, also ``uint8``. Everything is
compared on Y of BT.601 (rounded to ``uint8`` like MATLAB's ``rgb2ycbcr``) with ``s`` pixels of
border cropped. A Y model gets Y(LR) / 255 and its output is rounded to ``uint8`` luma.

``--lr-degrade`` adds rows where the LR image is compressed before the model sees it
(:mod:`streamsr.lr_degrade`: JPEG, or an H.264/HEVC clip of LR crops). There the bicubic
baseline is MATLAB bicubic of the *decoded* LR luma, the fair comparison for a Y model.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from streamsr.errors import InputError, ModelError
from streamsr.lr_degrade import LRDegradation, clip_offsets, encode_clip, jpeg_rgb
from streamsr.metrics import image_to_y, modcrop, psnr, shave, ssim
from streamsr.resize import imresize
from streamsr.sources.image_file import read_image_file, to_8bit
from streamsr.types import ModelCard

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
Upscaler = Callable[[np.ndarray], np.ndarray]  # LR luma (H, W) float32 [0, 1] -> SR luma


@dataclass(frozen=True)
class EvalImage:
    """One test image prepared at one scale; luma planes on the [0, 255] scale."""

    name: str
    hr_y: np.ndarray  # modcropped HR luma, float64
    lr_y: np.ndarray  # LR luma / 255, float32 in [0, 1]: what a Y model sees
    bicubic_y: np.ndarray  # luma of the uint8 bicubic upscale of the uint8 LR image
    qp: float | None = None  # the frame's mean H.264 QP, for a frame of a compressed clip


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round and clip a [0, 255] float image to ``uint8`` (as saving it would)."""
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """An image as ``uint8`` RGB (HxWx3) or grey (HxW); alpha is dropped, 16 bits become 8.

    As stored, without its EXIF orientation: MATLAB's ``imread``, which the published tables
    used, ignores it, and the test sets carry none.
    """
    try:
        img = read_image_file(Path(path), upright=False)
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e.strerror or e}") from None
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"unsupported image type {img.dtype} in {path}")
    img = to_8bit(img)
    if img.ndim == 3:
        if img.shape[2] == 1:
            return img[:, :, 0]
        return img[:, :, 2::-1].copy()  # BGR(A) -> RGB
    return img


def image_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"not a folder of images: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images in {folder}")
    return files


def prepare(img: np.ndarray, scale: int, name: str = "") -> EvalImage:
    """HR/LR/bicubic luma of one ``uint8`` image for ``scale``."""
    hr = modcrop(img, scale)
    if min(hr.shape[:2]) < 2 * scale + 11:  # the SSIM window must fit after the shave
        raise InputError(f"image {name or ''} {img.shape[:2]} is too small for x{scale} evaluation")
    lr = to_uint8(imresize(hr, 1.0 / scale))
    bic = to_uint8(imresize(lr, scale))
    return EvalImage(
        name=name,
        hr_y=image_to_y(hr),
        lr_y=(image_to_y(lr) / 255.0).astype(np.float32),
        bicubic_y=image_to_y(bic),
    )


def _from_decoded(name: str, hr_y: np.ndarray, lr_y_u8: np.ndarray, scale: int, qp: float | None = None) -> EvalImage:
    lr = lr_y_u8.astype(np.float64)
    return EvalImage(name, hr_y, (lr / 255.0).astype(np.float32), to_uint8(imresize(lr, scale)).astype(np.float64), qp)


def prepare_degraded(img: np.ndarray, scale: int, degradation: LRDegradation, name: str = "") -> list[EvalImage]:
    """Test images with a compressed LR: one for JPEG, one per frame of a clip for H.264/HEVC."""
    clean = prepare(img, scale, name)
    if degradation.kind == "none":
        return [clean]
    lr_rgb = to_uint8(imresize(modcrop(img, scale), 1.0 / scale))
    if degradation.kind == "jpeg":
        decoded = image_to_y(jpeg_rgb(lr_rgb, degradation.strength))
        return [_from_decoded(name, clean.hr_y, decoded, scale)]
    offsets, (ch, cw) = clip_offsets(lr_rgb.shape[:2])
    lr_y = image_to_y(lr_rgb).astype(np.uint8)
    lumas = [lr_y[o : o + ch, o : o + cw] for o in offsets]
    rgbs = [lr_rgb[o : o + ch, o : o + cw] for o in offsets]
    decoded, qps = encode_clip(lumas, rgbs, degradation.kind, degradation.strength)
    return [
        _from_decoded(f"{name}@{o}", clean.hr_y[o * scale : (o + ch) * scale, o * scale : (o + cw) * scale], d, scale, qp)
        for o, d, qp in zip(offsets, decoded, qps)
    ]


CHECK_IMAGE = "streamsr.synthetic.scene_frames(192, 144, 1, seed=7)"


def check_image(scale: int) -> EvalImage:
    """The small image every card's ``selfcheck`` PSNR is measured on: made by code, no file."""
    from streamsr.synthetic import scene_frames

    return prepare(next(scene_frames(192, 144, 1, seed=7)), scale, "selfcheck")


def load_dataset(folder: str | Path, scale: int, degradation: LRDegradation | None = None) -> list[EvalImage]:
    if degradation is None or degradation.kind == "none":
        return [prepare(read_image(p), scale, p.name) for p in image_files(folder)]
    return [im for p in image_files(folder) for im in prepare_degraded(read_image(p), scale, degradation, p.name)]


def score(sr_y: np.ndarray, hr_y: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) of an SR luma plane ([0, 255] float, rounded here) against HR luma."""
    if sr_y.shape != hr_y.shape:
        raise ModelError(f"model output {sr_y.shape} does not match HR {hr_y.shape}")
    s = shave(np.clip(np.round(sr_y), 0, 255), scale)
    h = shave(hr_y, scale)
    return psnr(s, h), ssim(s, h)


def evaluate_images(
    images: list[EvalImage], scale: int, upscale: Upscaler | None = None
) -> dict[str, Any]:
    """Mean PSNR/SSIM of bicubic and (if given) of ``upscale`` over prepared images."""
    bic = [score(im.bicubic_y, im.hr_y, scale) for im in images]
    out: dict[str, Any] = {
        "images": len(images),
        "bicubic_psnr": float(np.mean([b[0] for b in bic])),
        "bicubic_ssim": float(np.mean([b[1] for b in bic])),
    }
    if upscale is not None:
        res = [score(np.asarray(upscale(im.lr_y), np.float64) * 255.0, im.hr_y, scale) for im in images]
        out["psnr"] = float(np.mean([r[0] for r in res]))
        out["ssim"] = float(np.mean([r[1] for r in res]))
        out["per_image"] = {im.name: {"psnr": r[0], "ssim": r[1]} for im, r in zip(images, res)}
    return out


def mean_qp(images: list[EvalImage]) -> float | None:
    """Mean H.264 QP over the frames of compressed clips (pixel-weighted), None for other input."""
    if not images or any(im.qp is None for im in images):
        return None
    pixels = [im.lr_y.size for im in images]
    return float(np.average([im.qp for im in images], weights=pixels))


def onnx_upscaler(card: ModelCard, threads: int | None = None) -> Upscaler:
    """Run a card's ONNX file with onnxruntime (CPU) on one luma plane."""
    if card.colour != "y":
        raise ModelError(f"model {card.name}: only Y-channel models are evaluated so far")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(str(card.file(card.onnx)), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"model {card.name}: cannot load {card.file(card.onnx)}: {e}") from None
    in_name = sess.get_inputs()[0].name

    def upscale(lr_y: np.ndarray) -> np.ndarray:
        out = sess.run(None, {in_name: lr_y[None, None].astype(np.float32)})[0]
        return out[0, 0]

    return upscale


def evaluate_models(
    cards: list[ModelCard],
    folders: list[str | Path],
    scale: int,
    degradations: list[LRDegradation] | None = None,
    threads: int | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``results[dataset][degradation]``: bicubic and every model's PSNR/SSIM on the same input."""
    upscalers = {card.name: onnx_upscaler(card, threads) for card in cards}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for folder in folders:
        per_degradation = results.setdefault(Path(folder).name, {})
        for deg in degradations or [LRDegradation()]:
            images = load_dataset(folder, scale, deg)
            base = evaluate_images(images, scale)
            row: dict[str, Any] = {"images": len(images), "bicubic": {"psnr": base["bicubic_psnr"], "ssim": base["bicubic_ssim"]}}
            if (qp := mean_qp(images)) is not None:
                row["mean_qp"] = qp
            for name, up in upscalers.items():
                r = evaluate_images(images, scale, up)
                row[name] = {"psnr": r["psnr"], "ssim": r["ssim"], "per_image": r["per_image"]}
            per_degradation[str(deg)] = row
            log.info("x%d %s %s: %s", scale, folder, deg, {k: round(v["psnr"], 2) for k, v in row.items() if isinstance(v, dict)})
    return results


def evaluate_model(
    card: ModelCard | None, folders: list[str | Path], scale: int, threads: int | None = None
) -> dict[str, dict[str, Any]]:
    """Clean-protocol results per dataset (keyed by folder name); ``card=None`` measures bicubic alone."""
    upscale = onnx_upscaler(card, threads) if card is not None else None
    results = {}
    for folder in folders:
        images = load_dataset(folder, scale)
        results[Path(folder).name] = evaluate_images(images, scale, upscale)
    return results
