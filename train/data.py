"""Training patches: HR/LR luma pairs sampled from folders of images.

Every image is loaded once, cropped to a multiple of the scale, downscaled with MATLAB
bicubic (RGB, rounded to ``uint8``, then Y: the evaluation protocol) and kept in memory as
float32 luma in [0, 1]. Downscaling commutes with flips and 90-degree rotations of a
modcropped image (symmetric kernel, symmetric padding), so augmenting the aligned HR/LR
pair is the same as downscaling the augmented HR image, at no cost.

With a ``degradation`` (the CCTV one of :mod:`train.degrade`), the sampler keeps one degraded
copy of every LR image and degrades ``refresh`` of them anew at each step. Degrading whole
images (not patches) gives codecs their real context, puts their block grid at every offset
of a patch, and makes H.264/HEVC clips affordable: a few milliseconds per step instead of
one encode per patch.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamsr.errors import InputError
from streamsr.evaluate import image_files, read_image, to_uint8
from streamsr.metrics import image_to_y, modcrop
from streamsr.resize import imresize

if TYPE_CHECKING:
    from train.degrade import CCTVDegradation, Draw

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


def edge_weight(size: int, border: int, at_edge: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """A (size, size) 0/1 weight that leaves out ``border`` pixels along each side (top, bottom,
    left, right) that is not the image's own edge."""
    weight = np.ones((size, size), np.float32)
    if border:
        top, bottom, left, right = at_edge
        if not top:
            weight[:border] = 0
        if not bottom:
            weight[-border:] = 0
        if not left:
            weight[:, :border] = 0
        if not right:
            weight[:, -border:] = 0
    return weight


def split_holdout(dirs: list[str | Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """``(train, held_out)`` image files of ``dirs``: ``holdout`` files evenly spaced in sorted order.

    The choice depends only on the file names, so every run and every resume holds out the
    same images.
    """
    files = [f for d in dirs for f in image_files(d)]
    if holdout >= len(files):
        raise InputError(f"data.holdout {holdout}: only {len(files)} training images")
    picked = {int((i + 0.5) * len(files) / holdout) for i in range(holdout)} if holdout else set()
    return [f for i, f in enumerate(files) if i not in picked], [f for i, f in enumerate(files) if i in picked]


class PatchSampler:
    """Random aligned (LR, HR) patches with the 8 flips/rotations, from images in memory."""

    def __init__(
        self,
        files: list[Path],
        scale: int,
        patch_size: int,
        degradation: CCTVDegradation | None = None,
        workers: int = 1,
        edge_patches: float = 0.0,
    ) -> None:
        self.scale = scale
        self.edge_patches = edge_patches  # chance, per axis, that a patch is placed against the image's edge
        self.workers = workers  # threads that degrade images (the codecs release the GIL)
        self._pool: ThreadPoolExecutor | None = None
        self.patch = patch_size
        self.degradation = degradation
        self.pairs: list[Pair] = []
        for path in files:
            pair = make_pair(read_image(path), scale)
            if min(pair.lr.shape) >= patch_size:
                self.pairs.append(pair)
            else:
                log.warning("skipping %s: smaller than a %d px LR patch", path, patch_size)
        if not self.pairs:
            raise InputError(f"no training image is large enough for x{scale} patches of {patch_size}")
        self.degraded: list[np.ndarray] = []  # one degraded LR per pair, drawn on the first sample()
        # Sample images in proportion to how many patch positions they hold.
        area = np.array([(p.lr.shape[0] - patch_size + 1) * (p.lr.shape[1] - patch_size + 1) for p in self.pairs])
        self.prob = area / area.sum()
        log.info("loaded %d training images (%d LR pixels)", len(self.pairs), sum(p.lr.size for p in self.pairs))

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(lr, hr)`` float32 arrays of shape (batch, 1, p, p) and (batch, 1, p*s, p*s)."""
        lr, hr, _ = self.sample_for_loss(batch, rng)
        return lr, hr

    def sample_for_loss(self, batch: int, rng: np.random.Generator,
                        border: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(lr, hr, weight)``: the patches of :meth:`sample` and, with ``edge_patches``, a 0/1
        weight of each HR pixel for the loss (batch, 1, p*s, p*s), else None.

        The weight leaves out ``border`` LR pixels along the sides of a patch that were cut from
        inside its image (there the network sees zero padding that an interior pixel of a real
        image never sees) and keeps the sides that are the image's own edges: a network must learn
        those, since every image it is used on has them. Without ``edge_patches`` a patch touches
        an edge by chance only (about 1 in 100 per side for 64-pixel patches of 240x160 images),
        and a model trained with the border left out made garbage along image edges (ESPCN x2:
        34.4 dB on a held-out image where bicubic makes 37.8, 39.6 once two more pixels are shaved).
        """
        p, s = self.patch, self.scale
        lr_out = np.empty((batch, 1, p, p), np.float32)
        hr_out = np.empty((batch, 1, p * s, p * s), np.float32)
        weight = np.empty((batch, 1, p * s, p * s), np.float32) if self.edge_patches else None
        idx = rng.choice(len(self.pairs), size=batch, p=self.prob)
        # Positions and flips first, the pool's refresh after: in one call, the patches a
        # generator state picks do not depend on the degradation.
        picks = []
        for i in idx:
            h, w = self.pairs[i].lr.shape
            y = int(rng.integers(0, h - p + 1))
            x = int(rng.integers(0, w - p + 1))
            if self.edge_patches:  # no extra draws without it: older runs repeat exactly
                if rng.random() < self.edge_patches:
                    y = 0 if rng.random() < 0.5 else h - p
                if rng.random() < self.edge_patches:
                    x = 0 if rng.random() < 0.5 else w - p
            picks.append((i, y, x, int(rng.integers(0, 8))))
        if self.degradation is not None:
            self._refresh(rng)
        for b, (i, y, x, k) in enumerate(picks):
            pair = self.pairs[i]
            lr_plane = pair.lr if self.degradation is None else self.degraded[i]
            lr = lr_plane[y : y + p, x : x + p]
            hr = pair.hr[y * s : (y + p) * s, x * s : (x + p) * s]
            if k & 4:
                lr, hr = lr.T, hr.T
            lr_out[b, 0] = np.rot90(lr, k & 3)
            hr_out[b, 0] = np.rot90(hr, k & 3)
            if weight is not None:
                mask = edge_weight(p * s, border * s, (y == 0, y + p == lr_plane.shape[0], x == 0, x + p == lr_plane.shape[1]))
                weight[b, 0] = np.rot90(mask.T if k & 4 else mask, k & 3)
        return lr_out, hr_out, weight

    def _degrade(self, i: int, draw: Draw, seed: int) -> np.ndarray:
        assert self.degradation is not None
        out = self.degradation.apply(self.pairs[i].lr * np.float32(255.0), np.random.default_rng(seed), draw)
        return out.astype(np.float32) / np.float32(255.0)

    def _refresh(self, rng: np.random.Generator) -> None:
        """Degrade every image on the first call, then ``refresh`` random ones per call.

        What each image gets (its draw and its noise seed) is decided here, in order, from
        ``rng``; the codec work then runs on a thread pool (PyAV and OpenCV release the GIL), so
        the result does not depend on the number of threads and a resumed run repeats exactly.
        """
        assert self.degradation is not None
        n = len(self.pairs)
        if not self.degraded:
            self.degraded = [self.pairs[i].lr for i in range(n)]
            indices = list(range(n))
        else:
            indices = [int(i) for i in rng.choice(n, size=min(self.degradation.cfg.refresh, n), replace=False)]
        jobs = [(i, self.degradation.draw(rng), int(rng.integers(2**63))) for i in indices]
        for (i, _, _), out in zip(jobs, self._map(lambda job: self._degrade(*job), jobs)):
            self.degraded[i] = out

    def _map(self, fn, jobs):  # -> Iterator
        if len(jobs) < 2 or self.workers < 2:
            return map(fn, jobs)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="degrade")
        return self._pool.map(fn, jobs)
