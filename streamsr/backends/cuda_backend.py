"""PyTorch on an NVIDIA GPU: fp16/bf16, channels_last, CUDA graphs per shape, overlapped I/O.

CUDA graphs: one per whole-batch input shape, at most ``MAX_GRAPHS`` kept (the least
recently used is dropped), all captured into one shared memory pool. Tiles (frames over
``max_pixels``, whose border tiles change shape) run eagerly: capturing a graph per tile shape
would cost a capture and a graph's memory for each. Sharing the pool is safe because graphs
replay one at a time on one stream and each replay's output is read (quantised) on that stream
before the next replay: a later capture may reuse an earlier graph's freed intermediates, never
an output still to be read.

Never run on the development machines (they have no GPU); see README for what has been
exercised. The tests drive it with a fake ``torch.cuda`` (tests/fake_gpu.py). Needs the
``torch`` extra with a CUDA build of torch.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from streamsr.backends.cuda_io import CudaPlanes, GpuBackend, Pending
from streamsr.errors import BackendUnavailable, ConfigError, ModelError
from streamsr.lru import LRUCache
from streamsr.types import ModelCard

log = logging.getLogger(__name__)

MAX_GRAPHS = 8  # captured shapes kept; a stream has one or two (full batches, the last short one)



def require_cuda() -> Any:
    """torch, if it is installed and sees a CUDA device; BackendUnavailable otherwise."""
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("torch is not installed (pip install 'streamsr[torch]' with a CUDA build)") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("no CUDA device is visible to torch (a CPU build, or no NVIDIA driver)")
    return torch


class CudaBackend(GpuBackend):
    name = "cuda"

    def __init__(self, card: ModelCard, *, threads: int | None = None, precision: str = "fp16",
                 cuda_graphs: bool = True, compile_model: bool = False, device: str = "cuda") -> None:
        super().__init__(card, threads=threads, precision=precision)
        torch = require_cuda()
        from streamsr.models import build_model

        dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        if precision not in dtypes:
            raise ConfigError(f"the cuda backend runs {', '.join(dtypes)}, not {precision}")
        if not card.torch_weights:
            raise ModelError(f"model {card.name} ships no torch weights; use --engine tensorrt or onnxruntime")
        self._torch = torch
        torch.backends.cudnn.benchmark = True  # shapes are fixed per stream: let cuDNN pick once
        self._device = torch.device(device)
        self._dtype = dtypes[precision]
        model = build_model(card.arch, card.scale, **card.arch_kwargs)
        model.load_state_dict(torch.load(card.file(card.torch_weights), map_location="cpu", weights_only=True))
        model = model.eval().to(self._device, dtype=self._dtype, memory_format=torch.channels_last)
        if compile_model:
            model = torch.compile(model, mode="max-autotune-no-cudagraphs")
        self._model = model
        self._cuda_graphs = cuda_graphs
        self._graphs: LRUCache[tuple[int, ...], tuple[Any, Any, Any]] = LRUCache(
            MAX_GRAPHS, on_evict=lambda _graph: self._synchronize())
        self._pool = torch.cuda.graph_pool_handle() if cuda_graphs else None
        self._tiling = False  # set while _run_tiled runs: tiles go eagerly
        self._io = CudaPlanes(torch, self._device, self._dtype)

    def describe(self) -> str:
        graphs = ", CUDA graphs" if self._cuda_graphs else ""
        return f"cuda ({self.precision}{graphs}, {self._torch.cuda.get_device_name(self._device)})"

    def _forward(self, x: Any) -> Any:
        if not self._cuda_graphs or self._tiling:
            return self._model(x)
        graph, static_in, static_out = self._graphs.get_or_create(tuple(x.shape), lambda: self._capture(x))
        static_in.copy_(x)
        graph.replay()
        return static_out  # read (quantised) on this stream before the next replay overwrites it

    def _run_tiled(self, batch: np.ndarray) -> np.ndarray:
        self._tiling = True
        try:
            return super()._run_tiled(batch)
        finally:
            self._tiling = False

    def _synchronize(self) -> None:
        """Wait for the device: a graph is dropped only after its last replay has finished."""
        self._torch.cuda.synchronize(self._device)

    def _capture(self, x: Any) -> tuple[Any, Any, Any]:
        torch = self._torch
        log.debug("capturing a CUDA graph for input %s", tuple(x.shape))
        static_in = torch.empty_like(x, memory_format=torch.channels_last)
        static_in.copy_(x)
        side = torch.cuda.Stream(self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):  # warm-up outside capture: cuDNN picks its algorithms
            for _ in range(3):
                self._model(static_in)
        torch.cuda.current_stream(self._device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            static_out = self._model(static_in)
        return graph, static_in, static_out

    def _submit_whole(self, batch: np.ndarray) -> Pending:
        with self._torch.inference_mode():
            full = self.luma.full_range
            return self._io.download(self._forward(self._io.upload(batch, full_range=full)), full_range=full)

    def infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self._device, dtype=self._dtype).contiguous(memory_format=torch.channels_last)
            return self._model(t).float().cpu().numpy()

    def close(self) -> None:
        if len(self._graphs):
            self._synchronize()
        self._graphs.clear()
