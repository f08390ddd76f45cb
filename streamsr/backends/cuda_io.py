"""uint8 planes to and from a CUDA device, with the conversions done on the GPU.

Frames go up as uint8 from pinned host memory on an upload stream, are normalised,
clamped and quantised on the compute stream, and come back as uint8 on a download
stream. Streams are ordered with events, never with a device-wide synchronisation; the
only host wait is on the download event of the batch being collected.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamsr.backends.base import Backend
from streamsr.colour import LumaScale


@dataclass
class PlanesPending:
    """Luma and chroma of one batch in flight: ``result()`` gives (Y (N,sH,sW), CbCr (N,2,h',w'))."""

    luma: Pending
    chroma: Pending

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        chroma = self.chroma.result()  # (N, h', w', 2) as downloaded
        return self.luma.result(), np.ascontiguousarray(chroma.transpose(0, 3, 1, 2))


@dataclass(eq=False)
class Pending:
    """A batch in flight; ``result()`` waits for its download and returns uint8 planes.

    The first call copies the planes out of the pinned buffer; later calls return that copy.
    """

    host: Any  # pinned uint8 tensor the download lands in
    done: Any  # torch.cuda.Event recorded after the download
    count: int
    _value: np.ndarray | None = field(default=None, init=False, repr=False)

    def result(self) -> np.ndarray:
        if self._value is None:
            self.done.synchronize()
            self._value = self.host[: self.count].numpy().copy()
            self.host = None  # the pinned buffer belongs to the ring again
        return self._value


class CudaPlanes:
    """Staging buffers and streams for one backend. Not thread-safe: one infer thread uses it."""

    def __init__(self, torch: Any, device: Any, dtype: Any) -> None:
        self.torch = torch
        self.device = device
        self.dtype = dtype
        self.upload_stream = torch.cuda.Stream(device)
        self.download_stream = torch.cuda.Stream(device)
        # Two pinned buffers per shape and direction, used in turn, so batch k+1 can be staged
        # while batch k is still being copied. Each input buffer remembers the event of its last
        # copy, which must have finished before the buffer is overwritten.
        self._pinned_in: dict[tuple[int, ...], list[list[Any]]] = {}
        # Output buffers: [pinned buffer, weak reference to the Pending that last used it]. A
        # caller that holds more than two batches uncollected gets the oldest copied out (a
        # wait) before its buffer is reused, never another batch's planes.
        self._pinned_out: dict[tuple[int, ...], list[list[Any]]] = {}
        self._turn_in: dict[tuple[int, ...], int] = {}
        self._turn_out: dict[tuple[int, ...], int] = {}

    def _staging(self, shape: tuple[int, ...]) -> list[Any]:
        """[pinned buffer, event of its last upload or None], alternating between two."""
        ring = self._pinned_in.setdefault(shape, [])
        turn = self._turn_in.get(shape, 0)
        self._turn_in[shape] = (turn + 1) % 2
        if len(ring) <= turn:
            ring.append([self.torch.empty(shape, dtype=self.torch.uint8, pin_memory=True), None])
        slot = ring[turn]
        if slot[1] is not None:
            slot[1].synchronize()  # the upload of two batches ago has left this buffer
        return slot

    def upload(self, batch: np.ndarray, channels_last: bool = True, full_range: bool = False) -> Any:
        """uint8 (N, H, W[, C]) host -> float NCHW in [0, 1] on the device, ready on the current stream.

        ``channels_last`` suits cuDNN convolutions; TensorRT bindings want plain NCHW.
        ``full_range`` luma is mapped onto the limited-range unit the models were trained on,
        as on the CPU (colour.LumaScale).
        """
        torch = self.torch
        slot = self._staging(batch.shape)
        slot[0].numpy()[...] = batch
        with torch.cuda.stream(self.upload_stream):
            raw = slot[0].to(self.device, non_blocking=True)
            uploaded = torch.cuda.Event()
            uploaded.record(self.upload_stream)
        slot[1] = uploaded
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(uploaded)
        raw.record_stream(compute)  # the caching allocator must not reuse it before compute is done
        gain, offset = LumaScale(8, full_range).to_unit()
        x = raw.to(self.dtype).mul_(gain)
        if offset:
            x = x.add_(offset)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def download(self, y: Any, full_range: bool = False) -> Pending:
        """float NCHW on the device -> a Pending uint8 (N, sH, sW[, C]) on the host (``full_range``: as upload)."""
        torch = self.torch
        offset, gain = LumaScale(8, full_range).from_unit()
        q = y.float()
        q = q.sub_(offset).mul_(gain) if offset else q.mul_(gain)
        q = q.clamp_(0.0, 255.0).round_().to(torch.uint8)
        q = q[:, 0] if q.shape[1] == 1 else q.permute(0, 2, 3, 1)
        q = q.contiguous()
        computed = torch.cuda.Event()
        computed.record(torch.cuda.current_stream(self.device))
        slot = self._landing(tuple(q.shape))
        with torch.cuda.stream(self.download_stream):
            self.download_stream.wait_event(computed)
            q.record_stream(self.download_stream)
            slot[0].copy_(q, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.download_stream)
        pending = Pending(host=slot[0], done=done, count=q.shape[0])
        slot[1] = weakref.ref(pending)
        return pending

    def _landing(self, shape: tuple[int, ...]) -> list[Any]:
        """[pinned buffer, its last Pending], alternating between two; the last one settled first."""
        ring = self._pinned_out.setdefault(shape, [])
        turn = self._turn_out.get(shape, 0)
        self._turn_out[shape] = (turn + 1) % 2
        if len(ring) <= turn:
            ring.append([self.torch.empty(shape, dtype=self.torch.uint8, pin_memory=True), None])
        slot = ring[turn]
        previous = slot[1]() if slot[1] is not None else None
        if previous is not None:
            previous.result()  # a no-op when the caller collected it already (in_flight 2)
        return slot

    def upscale_chroma(self, chroma: np.ndarray, luma_out: tuple[int, int], luma_in: tuple[int, int]) -> Pending:
        """uint8 Cb/Cr (N, 2, h, w) -> bicubic to fit a luma of ``luma_out``, on the GPU.

        Same size rule as streamsr.colour.upscale_chroma (4:2:0 stays 4:2:0, odd sizes kept);
        torch's bicubic uses a = -0.75 like OpenCV's INTER_CUBIC.
        """
        torch = self.torch
        sub_h = 2 if chroma.shape[2] < luma_in[0] else 1
        sub_w = 2 if chroma.shape[3] < luma_in[1] else 1
        size = (-(-luma_out[0] // sub_h), -(-luma_out[1] // sub_w))
        n = chroma.shape[0]
        x = self.upload(chroma.reshape(n * 2, *chroma.shape[2:]), channels_last=False)  # (2N, 1, h, w)
        up = torch.nn.functional.interpolate(x.float(), size=size, mode="bicubic", align_corners=False)
        return self.download(up.reshape(n, 2, *size))


class GpuBackend(Backend):
    """What the CUDA engines share: fp16 by default, two batches in flight, chroma on the GPU.

    Subclasses set ``self._io`` (a CudaPlanes) and implement ``_submit_whole``.
    """

    in_flight = 2
    upscales_chroma = True
    default_precision = "fp16"
    _io: CudaPlanes

    def _run_whole(self, batch: np.ndarray) -> np.ndarray:
        return self._submit_whole(batch).result()

    def submit_planes(self, luma: np.ndarray, chroma: np.ndarray) -> PlanesPending:
        """Luma through the model and Cb/Cr (N, 2, h, w) through bicubic, both on the GPU."""
        n, h, w = luma.shape
        luma_pending = self.submit(luma)
        scale = self.card.scale
        return PlanesPending(luma_pending, self._io.upscale_chroma(chroma, (h * scale, w * scale), (h, w)))
