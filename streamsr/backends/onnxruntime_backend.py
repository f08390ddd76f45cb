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
        files = {"fp32": card.onnx, "fp16": card.onnx_fp16, "int8": card.onnx_int8}
        if not files.get(precision):
            offered = ", ".join(p for p, f in files.items() if f)
            raise ConfigError(f"onnxruntime runs {card.name} in {offered}, not {precision}")
        model_path = card.file(files[precision])
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
