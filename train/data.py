"""Training patches: HR/LR luma pairs sampled from folders of images.

Every image is loaded once, cropped to a multiple of the scale, downscaled with MATLAB
bicubic (RGB, rounded to ``uint8``, then Y: the evaluation protocol) and kept in memory as
float32 luma in [0, 1]. Downscaling commutes with flips and 90-degree rotations of a
modcropped image (symmetric kernel, symmetric padding), so augmenting the aligned HR/LR
pair is the same as downscaling the augmented HR image, at no cost.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamsr.errors import InputError
from streamsr.evaluate import image_files, read_image, to_uint8
from streamsr.metrics import image_to_y, modcrop
from streamsr.resize import imresize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    hr: np.ndarray  # (H*s, W*s) float32 luma in [0, 1]
    lr: np.ndarray  # (H, W) float32 luma in [0, 1]


def make_pair(img: np.ndarray, scale: int) -> Pair:
    hr = modcrop(img, scale)
    lr = to_uint8(imresize(hr, 1.0 / scale))
    return Pair(
        hr=(image_to_y(hr) / 255.0).astype(np.float32),
        lr=(image_to_y(lr) / 255.0).astype(np.float32),
    )


class PatchSampler:
    """Random aligned (LR, HR) patches with the 8 flips/rotations, from images in memory."""

    def __init__(self, dirs: list[str | Path], scale: int, patch_size: int) -> None:
        self.scale = scale
        self.patch = patch_size
        self.pairs: list[Pair] = []
        for d in dirs:
            for path in image_files(d):
                pair = make_pair(read_image(path), scale)
                if min(pair.lr.shape) >= patch_size:
                    self.pairs.append(pair)
                else:
                    log.warning("skipping %s: smaller than a %d px LR patch", path, patch_size)
        if not self.pairs:
            raise InputError(f"no training image is large enough for x{scale} patches of {patch_size}")
        # Sample images in proportion to how many patch positions they hold.
        area = np.array([(p.lr.shape[0] - patch_size + 1) * (p.lr.shape[1] - patch_size + 1) for p in self.pairs])
        self.prob = area / area.sum()
        log.info("loaded %d training images (%d LR pixels)", len(self.pairs), sum(p.lr.size for p in self.pairs))

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(lr, hr)`` float32 arrays of shape (batch, 1, p, p) and (batch, 1, p*s, p*s)."""
        p, s = self.patch, self.scale
        lr_out = np.empty((batch, 1, p, p), np.float32)
        hr_out = np.empty((batch, 1, p * s, p * s), np.float32)
        idx = rng.choice(len(self.pairs), size=batch, p=self.prob)
        for b, i in enumerate(idx):
            pair = self.pairs[i]
            h, w = pair.lr.shape
            y = int(rng.integers(0, h - p + 1))
            x = int(rng.integers(0, w - p + 1))
            lr = pair.lr[y : y + p, x : x + p]
            hr = pair.hr[y * s : (y + p) * s, x * s : (x + p) * s]
            k = int(rng.integers(0, 8))
            if k & 4:
                lr, hr = lr.T, hr.T
            lr_out[b, 0] = np.rot90(lr, k & 3)
            hr_out[b, 0] = np.rot90(hr, k & 3)
        return lr_out, hr_out
