"""PyTorch on the CPU (the GPU path is its own issue). Needs the ``torch`` extra."""
from __future__ import annotations

import numpy as np

from streamsr.backends.base import Backend
from streamsr.errors import BackendUnavailable, ConfigError, ModelError
from streamsr.types import ModelCard


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, card: ModelCard, *, threads: int | None = None, precision: str = "fp32") -> None:
        super().__init__(card, threads=threads, precision=precision)
        try:
            import torch
        except ImportError:
            raise BackendUnavailable("torch is not installed (pip install 'streamsr[torch]')") from None
        from streamsr.models import build_model

        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"the torch CPU backend runs fp32 or bf16, not {precision}")
        if not card.torch_weights:
            raise ModelError(f"model {card.name} ships no torch weights; use --engine onnxruntime")
        self._torch = torch
        torch.set_num_threads(self.threads)
        model = build_model(card.arch, card.scale, **card.arch_kwargs)
        state = torch.load(card.file(card.torch_weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        self._dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self._model = model.eval().to(dtype=self._dtype, memory_format=torch.channels_last)

    def infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(x).to(dtype=self._dtype).contiguous(memory_format=torch.channels_last)
            return self._model(t).float().numpy()
