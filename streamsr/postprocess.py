"""What happens to a frame after inference: chroma upscaling and the --compare layout."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from streamsr.colour import upscale_chroma, upscale_planes_classic
from streamsr.pixfmt import frame_layout, pad_planes
from streamsr.types import Frame

COMPARE_LABELS = ("input (nearest)", "bicubic", "model")


def finish(frame: Frame, scale: int) -> Frame:
    """Upscale the chroma planes classically to fit the model's luma output."""
    if frame.chroma_upscaled:
        return frame
    y = frame.planes[0]
    luma_in = (y.shape[0] // scale, y.shape[1] // scale)
    cb = upscale_chroma(frame.planes[1], luma_in, y.shape)
    cr = upscale_chroma(frame.planes[2], luma_in, y.shape)
    return replace(frame, planes=(y, cb, cr))


def _label(y: np.ndarray, text: str, white: int = 255) -> None:
    """Write ``text`` into the luma plane, white on a black outline (any sample depth)."""
    scale = max(0.5, y.shape[0] / 600)
    org = (int(10 * scale), int(30 * scale))
    if y.dtype == np.uint8:
        cv2.putText(y, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 0, int(4 * scale), cv2.LINE_AA)
        cv2.putText(y, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, white, max(1, int(1.5 * scale)), cv2.LINE_AA)
        return
    # OpenCV draws text on 8-bit images only: draw coverage masks and blend them in
    for value, thickness in ((0, int(4 * scale)), (white, max(1, int(1.5 * scale)))):
        mask = np.zeros(y.shape, np.uint8)
        cv2.putText(mask, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
        a = mask.astype(np.float32) / 255.0
        y[:] = np.round(y * (1.0 - a) + value * a).astype(y.dtype)


def compare(frame: Frame, scale: int) -> Frame:
    """Input (nearest), bicubic and model side by side, each labelled."""
    assert frame.source_planes is not None, "compare needs the source planes"
    layout = frame_layout(frame.source_planes, frame.bit_depth)
    model = finish(frame, scale).planes
    panels = [
        upscale_planes_classic(frame.source_planes, scale, cv2.INTER_NEAREST),
        upscale_planes_classic(frame.source_planes, scale, cv2.INTER_CUBIC),
        model,
    ]
    # panels side by side must each end on a chroma sample boundary
    panels = [tuple(p.copy() for p in pad_planes(panel, layout)) for panel in panels]
    for panel, text in zip(panels, COMPARE_LABELS):
        _label(panel[0], text, layout.peak)
    planes = tuple(np.hstack([panel[i] for panel in panels]) for i in range(3))
    return replace(frame, planes=planes, source_planes=None)
