"""A procedural CCTV-like scene: a facade, a car park, a moving car with a plate, an OSD clock.

Everything is drawn here, so the demo and the benchmarks need no footage of their own and
no licence: the ground truth is known exactly, which lets the demo measure PSNR. The frames
are RGB; colour.rgb_to_yuv420_swscale makes video planes of them and
sinks.video_stream.write_clip encodes those.
"""
from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from streamsr.resize import imresize

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    sky = np.linspace(200, 150, height // 2, dtype=np.float32)[:, None, None]
    img[: height // 2] = (sky * np.array([1.0, 0.95, 0.85])).astype(np.uint8)
    # a distant hedge behind the car park: leafy noise
    hedge = slice(height * 7 // 20, height // 2)
    leaves = rng.normal(0, 25, (hedge.stop - hedge.start, width, 1))
    img[hedge] = np.clip(np.array([50, 110, 45]) + leaves, 0, 255).astype(np.uint8)
    # facade with a grid of windows and brick courses
    top, bottom = height // 8, height // 2
    img[top:bottom, : width * 3 // 5] = (95, 110, 150)
    for y in range(top, bottom, max(3, height // 90)):
        cv2.line(img, (0, y), (width * 3 // 5, y), (80, 92, 130), 1)
    step = max(12, width // 24)
    for x in range(step // 2, width * 3 // 5 - step // 2, step):
        for y in range(top + step // 3, bottom - step, step):
            shade = int(rng.integers(40, 200))
            cv2.rectangle(img, (x, y), (x + step // 2, y + step * 2 // 3), (shade, shade, shade + 20), -1)
            cv2.rectangle(img, (x, y), (x + step // 2, y + step * 2 // 3), (30, 30, 30), 1)
    # signs
    cv2.putText(img, "PARKING P2", (width * 2 // 3, height // 5), FONT, height / 500, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.rectangle(img, (width * 2 // 3 - 6, height // 5 - height // 22), (width - 10, height // 5 + 8), (0, 90, 0), 2)
    # car park: asphalt noise and slanted bay markings
    img[height // 2 :] = 70
    noise = rng.normal(0, 8, (height - height // 2, width, 1))
    img[height // 2 :] = np.clip(img[height // 2 :] + noise, 0, 255).astype(np.uint8)
    for x in range(-width // 4, width, max(20, width // 14)):
        cv2.line(img, (x, height - 1), (x + width // 8, height * 11 // 20), (230, 230, 230), max(1, width // 400), cv2.LINE_AA)
    # a fence: fine diagonal mesh, the hardest thing for any upscaler
    fence_top = height * 9 // 20
    for x in range(0, width, 6):
        cv2.line(img, (x, fence_top), (x + 16, fence_top + 16), (40, 40, 40), 1, cv2.LINE_AA)
        cv2.line(img, (x + 16, fence_top), (x, fence_top + 16), (40, 40, 40), 1, cv2.LINE_AA)
    return img


def scene_frames(width: int, height: int, count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` RGB frames of the scene; the car and the person move, the clock ticks."""
    base = _background(width, height, seed)
    car_w, car_h = width // 5, height // 9
    for i in range(count):
        img = base.copy()
        x = int((i * width / max(count, 1) * 0.8) % (width + car_w)) - car_w // 2
        y = height * 3 // 4
        cv2.rectangle(img, (x, y - car_h), (x + car_w, y), (30, 40, 170), -1)
        cv2.rectangle(img, (x + car_w // 5, y - car_h * 3 // 2), (x + car_w * 4 // 5, y - car_h), (20, 30, 140), -1)
        for wx in (x + car_w // 5, x + car_w * 4 // 5):
            cv2.circle(img, (wx, y), car_h // 3, (15, 15, 15), -1)
        plate_w, plate_h = car_w // 2, car_h // 3
        px, py = x + car_w // 2 - plate_w // 2, y - plate_h - 4
        cv2.rectangle(img, (px, py), (px + plate_w, py + plate_h), (240, 240, 240), -1)
        cv2.putText(img, "AB 123 CD", (px + 3, py + plate_h - 4), FONT, plate_h / 45, (10, 10, 10), 1, cv2.LINE_AA)
        person_x = width - int(i * 1.5) % width
        cv2.ellipse(img, (person_x, height * 3 // 5), (width // 90, height // 22), 0, 0, 360, (40, 160, 200), -1)
        cv2.circle(img, (person_x, height * 3 // 5 - height // 18), width // 140, (150, 180, 220), -1)
        stamp = f"2026-11-22 12:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 10}  CAM 01"
        cv2.putText(img, stamp, (8, height - 10), FONT, height / 900, (255, 255, 255), 1, cv2.LINE_AA)
        yield img


def downscale_planes(planes: tuple[np.ndarray, ...], scale: int) -> tuple[np.ndarray, ...]:
    """MATLAB-bicubic downscale of each plane by ``scale`` (the evaluation protocol's degradation)."""
    return tuple(np.clip(np.rint(imresize(p.astype(np.float32), 1 / scale)), 0, 255).astype(np.uint8) for p in planes)
