"""PyTorch on an NVIDIA GPU: fp16/bf16, channels_last, CUDA graphs per shape, overlapped I/O.

Never run on the development machines (they have no GPU); see README for what has been
exercised. Needs the ``torch`` extra with a CUDA build of torch.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from streamsr.backends.cuda_io import CudaPlanes, GpuBackend, Pending
from streamsr.errors import BackendUnavailable, ConfigError, ModelError
from streamsr.types import ModelCard

MAX_GRAPHS = 8  # captured shapes kept; a live stream has one or two


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
        self._graphs: OrderedDict[tuple[int, ...], tuple[Any, Any, Any]] = OrderedDict()
        self._io = CudaPlanes(torch, self._device, self._dtype)

    def describe(self) -> str:
        graphs = ", CUDA graphs" if self._cuda_graphs else ""
        return f"cuda ({self.precision}{graphs}, {self._torch.cuda.get_device_name(self._device)})"

    def _forward(self, x: Any) -> Any:
        if not self._cuda_graphs:
            return self._model(x)
        key = tuple(x.shape)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(x)
            self._graphs[key] = entry
            if len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out  # read (quantised) on this stream before the next replay overwrites it

    def _capture(self, x: Any) -> tuple[Any, Any, Any]:
        torch = self._torch
        static_in = torch.empty_like(x, memory_format=torch.channels_last)
        static_in.copy_(x)
        side = torch.cuda.Stream(self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):  # warm-up outside capture: cuDNN picks its algorithms
            for _ in range(3):
                self._model(static_in)
        torch.cuda.current_stream(self._device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._model(static_in)
        return graph, static_in, static_out

    def _submit_whole(self, batch: np.ndarray) -> Pending:
        with self._torch.inference_mode():
            x = self._io.upload(batch)
            return self._io.download(self._forward(x))


    def infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self._device, dtype=self._dtype).contiguous(memory_format=torch.channels_last)
            return self._model(t).float().cpu().numpy()

    def close(self) -> None:
        self._graphs.clear()
