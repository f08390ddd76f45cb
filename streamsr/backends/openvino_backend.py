"""OpenVINO on the CPU, compiled once per input shape, precision selectable (fp32, bf16)."""
from __future__ import annotations

import numpy as np

from streamsr.backends.base import Backend, from_network_output, to_network_input
from streamsr.colour import LumaScale
from streamsr.errors import BackendUnavailable, ConfigError
from streamsr.lru import LRUCache
from streamsr.types import ModelCard

# int8: the card's QDQ int8 ONNX file, whose quantised ops OpenVINO runs in int8 itself.
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}


def cpu_supports(precision: str) -> bool:
    """Whether OpenVINO's CPU plugin has native support for ``precision`` on this machine."""
    if precision == "fp32":
        return True
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}[precision] in caps


MAX_STREAMS = 4
# Compiled models kept per input shape (each holds its own activation buffers); a folder of
# images of many sizes evicts the least recently used instead of growing without bound.
SHAPE_CACHE = 4


class _Pending:
    """An asynchronous request in flight; ``result()`` waits and quantises its output."""

    def __init__(self, request, channels: int, luma: LumaScale) -> None:
        self.request = request
        self.channels = channels
        self.luma = luma

    def result(self) -> np.ndarray:
        self.request.wait()
        return from_network_output(self.request.get_output_tensor(0).data, self.channels, self.luma)


class OpenVinoBackend(Backend):
    """Compiled per input shape for throughput: ``in_flight`` CPU streams run one batch each.

    Separate single-threaded streams beat one two-threaded request here (no barrier to wait
    at, and an encoder thread that preempts one stream does not stall the other).
    """

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
        if precision == "int8" and not card.onnx_int8:
            raise ConfigError(f"model {card.name} has no int8 file (train/quantize.py makes one)")
        self._core = ov.Core()
        self._model = self._core.read_model(str(card.file(card.onnx_int8 if precision == "int8" else card.onnx)))
        self.in_flight = max(1, min(self.threads, MAX_STREAMS))
        self._rings: LRUCache[tuple[int, ...], list[object]] = LRUCache(SHAPE_CACHE, on_evict=_wait_all)
        self._sync: LRUCache[tuple[int, ...], object] = LRUCache(SHAPE_CACHE)
        self._turn = 0

    def _compile(self, shape: tuple[int, ...], hint: str, streams: int):
        model = self._model.clone()
        model.reshape({model.inputs[0].get_any_name(): list(shape)})
        config = {
            "INFERENCE_PRECISION_HINT": _HINTS[self.precision],
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": hint,
            "NUM_STREAMS": streams,
        }
        return self._core.compile_model(model, "CPU", config)

    def _ring(self, shape: tuple[int, ...]) -> list[object]:
        """Requests of a throughput-compiled model, one per stream, for ``submit``."""
        def create() -> list[object]:
            compiled = self._compile(shape, "THROUGHPUT", self.in_flight)
            return [compiled.create_infer_request() for _ in range(self.in_flight)]

        return self._rings.get_or_create(shape, create)

    def _sync_request(self, shape: tuple[int, ...]):
        """A latency-compiled request using every thread, for synchronous ``run``."""
        return self._sync.get_or_create(shape, lambda: self._compile(shape, "LATENCY", 1).create_infer_request())

    def _submit_whole(self, batch: np.ndarray) -> _Pending:
        """Start the next request of the ring; the pipeline collects at most ``in_flight`` at once."""
        x = to_network_input(batch, self.luma)
        ring = self._ring(x.shape)
        request = ring[self._turn % len(ring)]
        self._turn += 1
        request.wait()  # a no-op unless a caller submitted more than in_flight without collecting
        request.start_async({0: x})
        return _Pending(request, self.card.channels, self.luma)

    def infer(self, x: np.ndarray) -> np.ndarray:
        request = self._sync_request(x.shape)
        request.infer({0: x})
        return request.get_output_tensor(0).data

    def describe(self) -> str:
        return f"openvino ({self.precision}, {self.threads} threads in {self.in_flight} streams)"

    def close(self) -> None:
        for ring in self._rings.values():
            _wait_all(ring)
        self._rings.clear()
        self._sync.clear()


def _wait_all(ring: list[object]) -> None:
    """Let an evicted ring's requests finish before their buffers go (a pending result reads them)."""
    for request in ring:
        request.wait()
