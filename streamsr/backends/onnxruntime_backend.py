"""ONNX Runtime on the CPU."""
from __future__ import annotations

import numpy as np

from streamsr.backends.base import Backend
from streamsr.errors import BackendUnavailable, ConfigError
from streamsr.types import ModelCard


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, card: ModelCard, *, threads: int | None = None, precision: str = "fp32") -> None:
        super().__init__(card, threads=threads, precision=precision)
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
        if precision == "fp32":
            model_path = card.file(card.onnx)
        elif precision == "fp16" and card.onnx_fp16:
            model_path = card.file(card.onnx_fp16)
        else:
            raise ConfigError(f"onnxruntime runs this model in fp32 only, not {precision}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._input_dtype = np.float16 if "float16" in self._session.get_inputs()[0].type else np.float32

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {self._input: x.astype(self._input_dtype, copy=False)})[0]
        return out
