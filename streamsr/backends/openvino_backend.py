"""OpenVINO on the CPU, compiled once per input shape, precision selectable (fp32, bf16)."""
from __future__ import annotations

import numpy as np

from streamsr.backends.base import Backend
from streamsr.errors import BackendUnavailable, ConfigError
from streamsr.types import ModelCard

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def cpu_supports(precision: str) -> bool:
    """Whether OpenVINO's CPU plugin has native support for ``precision`` on this machine."""
    if precision == "fp32":
        return True
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return {"bf16": "BF16", "fp16": "FP16"}[precision] in caps


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, card: ModelCard, *, threads: int | None = None, precision: str = "fp32") -> None:
        super().__init__(card, threads=threads, precision=precision)
        try:
            import openvino as ov
        except ImportError:
            raise BackendUnavailable("openvino is not installed (pip install 'streamsr[openvino]')") from None
        if precision not in _HINTS:
            raise ConfigError(f"unknown precision {precision!r} (choose from {', '.join(_HINTS)})")
        if not cpu_supports(precision):
            raise BackendUnavailable(f"this CPU has no native {precision} support for OpenVINO")
        self._core = ov.Core()
        self._model = self._core.read_model(str(card.file(card.onnx)))
        self._compiled: dict[tuple[int, ...], object] = {}

    def _request(self, shape: tuple[int, ...]):
        request = self._compiled.get(shape)
        if request is None:
            model = self._model.clone()
            model.reshape({model.inputs[0].get_any_name(): list(shape)})
            config = {
                "INFERENCE_PRECISION_HINT": _HINTS[self.precision],
                "INFERENCE_NUM_THREADS": self.threads,
                "PERFORMANCE_HINT": "LATENCY",
            }
            request = self._core.compile_model(model, "CPU", config).create_infer_request()
            self._compiled[shape] = request
        return request

    def infer(self, x: np.ndarray) -> np.ndarray:
        request = self._request(x.shape)
        request.infer({0: x})
        return request.get_output_tensor(0).data

    def close(self) -> None:
        self._compiled.clear()
