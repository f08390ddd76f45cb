"""uint8 planes to and from a CUDA device, with the conversions done on the GPU.

Frames go up as uint8 from pinned host memory on an upload stream, are normalised,
clamped and quantised on the compute stream, and come back as uint8 on a download
stream. Streams are ordered with events, never with a device-wide synchronisation; the
only host wait is on the download event of the batch being collected.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Pending:
    """A batch in flight; ``result()`` waits for its download and returns uint8 planes."""

    host: Any  # pinned uint8 tensor the download lands in
    done: Any  # torch.cuda.Event recorded after the download
    count: int

    def result(self) -> np.ndarray:
        self.done.synchronize()
        return self.host[: self.count].numpy().copy()


class CudaPlanes:
    """Staging buffers and streams for one backend. Not thread-safe: one infer thread uses it."""

    def __init__(self, torch: Any, device: Any, dtype: Any) -> None:
        self.torch = torch
        self.device = device
        self.dtype = dtype
        self.upload_stream = torch.cuda.Stream(device)
        self.download_stream = torch.cuda.Stream(device)
        self._pinned_in: dict[tuple[int, ...], Any] = {}
        self._pinned_out: dict[tuple[int, ...], list[Any]] = {}
        self._next_out: dict[tuple[int, ...], int] = {}

    def _pinned(self, cache: dict, shape: tuple[int, ...]) -> Any:
        buf = cache.get(shape)
        if buf is None:
            buf = self.torch.empty(shape, dtype=self.torch.uint8, pin_memory=True)
            cache[shape] = buf
        return buf

    def upload(self, batch: np.ndarray, channels_last: bool = True) -> Any:
        """uint8 (N, H, W[, C]) host -> float NCHW in [0, 1] on the device, ready on the current stream.

        ``channels_last`` suits cuDNN convolutions; TensorRT bindings want plain NCHW.
        """
        torch = self.torch
        staging = self._pinned(self._pinned_in, batch.shape)
        staging.numpy()[...] = batch
        with torch.cuda.stream(self.upload_stream):
            raw = staging.to(self.device, non_blocking=True)
            uploaded = torch.cuda.Event()
            uploaded.record(self.upload_stream)
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(uploaded)
        raw.record_stream(compute)  # the caching allocator must not reuse it before compute is done
        x = raw.to(self.dtype).mul_(1.0 / 255.0)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def download(self, y: Any) -> Pending:
        """float NCHW on the device -> a Pending uint8 (N, sH, sW[, C]) on the host."""
        torch = self.torch
        q = y.float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
        q = q[:, 0] if q.shape[1] == 1 else q.permute(0, 2, 3, 1)
        q = q.contiguous()
        computed = torch.cuda.Event()
        computed.record(torch.cuda.current_stream(self.device))
        # two host buffers per shape, so the next batch can land while this one is read
        key = tuple(q.shape)
        buffers = self._pinned_out.setdefault(key, [])
        slot = self._next_out.get(key, 0)
        if len(buffers) <= slot:
            buffers.append(torch.empty(key, dtype=torch.uint8, pin_memory=True))
        self._next_out[key] = (slot + 1) % 2
        host = buffers[slot]
        with torch.cuda.stream(self.download_stream):
            self.download_stream.wait_event(computed)
            q.record_stream(self.download_stream)
            host.copy_(q, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.download_stream)
        return Pending(host=host, done=done, count=q.shape[0])
