"""Fakes for the GPU engines on a CPU: a ``tensorrt`` module and the part of ``torch.cuda`` they use.

Device memory is host memory: CPU tensors of a subclass that accepts ``record_stream``, whose
``data_ptr()`` is a real address. The fake TensorRT engine reads its input from the address
bound to its input and writes its output to the address bound to its output, running the parsed
ONNX with onnxruntime, so a wrong binding, shape or buffer gives a wrong picture. A plan is the
profile it was built with and the ONNX bytes, so a loaded engine refuses shapes outside its
profile (``set_input_shape`` returns False) as TensorRT does.

Work is done at once, but streams and events keep the order in which a GPU could finish it: an
execution is in flight until an event recorded after it on its stream is synchronised (directly,
or through another stream that waited on it). Changing an execution context (input shape,
addresses, another execution) or dropping it while its execution is in flight is a misuse: it is
raised where it happens and kept in ``FakeCuda.misuses`` (a dropped context cannot raise).

A CUDA graph captured under ``torch.cuda.graph`` records the outermost module called inside the
capture; ``replay()`` runs it again on the captured input tensor, in place into the captured
output, which is what a replay does to static tensors.
"""
from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import sys
import types
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class FakeMisuse(AssertionError):
    """The code under test used a fake GPU object in a way a real one would not survive."""


# -- torch.cuda ----------------------------------------------------------------------------------
class DeviceTensor(torch.Tensor):
    """A CPU tensor standing for a CUDA one; torch keeps the subclass through operations."""

    def record_stream(self, stream: Any) -> None:  # type: ignore[override]
        if not isinstance(stream, FakeStream):
            raise TypeError(f"record_stream takes a stream, not {stream!r}")


@dataclass(eq=False)
class Op:
    """Something queued on a stream: a wait on an event, or an execution of a context."""

    kind: str  # "wait" | "exec"
    target: Any  # the event waited on, or the context's _ContextState
    done: bool = False

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self.kind == "wait":
            self.target.synchronize()


class FakeStream:
    def __init__(self, cuda: FakeCuda, handle: int | None = None) -> None:
        self.cuda = cuda
        self.cuda_stream = next(cuda.handles) if handle is None else handle
        self.ops: list[Op] = []
        self.finished = 0  # ops[:finished] are done
        cuda.streams[self.cuda_stream] = self

    def wait_event(self, event: FakeEvent) -> None:
        self.ops.append(Op("wait", event))

    def wait_stream(self, other: FakeStream) -> None:
        event = FakeEvent(self.cuda)
        event.record(other)
        self.wait_event(event)

    def finish_until(self, position: int) -> None:
        while self.finished < position:
            op = self.ops[self.finished]
            self.finished += 1
            op.finish()

    def synchronize(self) -> None:
        self.finish_until(len(self.ops))

    def __repr__(self) -> str:
        return f"<FakeStream {self.cuda_stream:#x}>"


class FakeEvent:
    def __init__(self, cuda: FakeCuda, enable_timing: bool = False) -> None:
        self.cuda = cuda
        self.stream: FakeStream | None = None
        self.position = 0

    def record(self, stream: FakeStream | None = None) -> None:
        self.stream = stream or self.cuda.current_stream()
        self.position = len(self.stream.ops)

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream.finish_until(self.position)

    def query(self) -> bool:
        return self.stream is None or self.stream.finished >= self.position

    def elapsed_time(self, other: FakeEvent) -> float:
        return 0.0


class FakeGraph:
    def __init__(self) -> None:
        self.pool: Any = None
        self.call: tuple[Any, Any, Any] | None = None  # module, static input, static output
        self.replays = 0

    def replay(self) -> None:
        assert self.call is not None, "replay before capture"
        module, static_in, static_out = self.call
        with torch.inference_mode():
            static_out.copy_(module(static_in))
        self.replays += 1


class FakeCuda:
    """``torch.cuda``: streams, events, graphs and the device queries the backends make."""

    def __init__(self, name: str = "Fake GPU", capability: tuple[int, int] = (8, 9)) -> None:
        self.name = name
        self.capability = capability
        self.misuses: list[str] = []
        self.handles = itertools.count(0x1000, 0x10)
        self.streams: dict[int, FakeStream] = {}
        self.default = FakeStream(self, handle=0)
        self._current = [self.default]
        self.captures: list[FakeGraph] = []
        self.pools = itertools.count(1)
        self.synchronized = 0

    def misuse(self, message: str) -> FakeMisuse:
        self.misuses.append(message)
        return FakeMisuse(message)

    def is_available(self) -> bool:
        return True

    def get_device_name(self, device: Any = None) -> str:
        return self.name

    def get_device_capability(self, device: Any = None) -> tuple[int, int]:
        return self.capability

    def Stream(self, device: Any = None, priority: int = 0) -> FakeStream:  # noqa: N802 - torch's name
        return FakeStream(self)

    def Event(self, enable_timing: bool = False, **_: Any) -> FakeEvent:  # noqa: N802
        return FakeEvent(self, enable_timing)

    def current_stream(self, device: Any = None) -> FakeStream:
        return self._current[-1]

    def default_stream(self, device: Any = None) -> FakeStream:
        return self.default

    @contextlib.contextmanager
    def stream(self, stream: FakeStream) -> Iterator[None]:
        self._current.append(stream)
        try:
            yield
        finally:
            self._current.pop()

    def synchronize(self, device: Any = None) -> None:
        self.synchronized += 1
        for stream in list(self.streams.values()):
            stream.synchronize()

    def graph_pool_handle(self) -> tuple[str, int]:
        return ("pool", next(self.pools))

    def CUDAGraph(self) -> FakeGraph:  # noqa: N802
        return FakeGraph()

    @contextlib.contextmanager
    def graph(self, graph: FakeGraph, pool: Any = None, stream: Any = None, **_: Any) -> Iterator[None]:
        self.synchronize()  # as torch.cuda.graph does before a capture
        calls: list[tuple[Any, Any, Any]] = []
        hook = torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: calls.append((m, a[0], o)))
        try:
            yield
        finally:
            hook.remove()
        graph.call = calls[-1]  # the outermost module finishes last
        graph.pool = pool
        self.captures.append(graph)


class FakeTorch(types.ModuleType):
    """``torch`` with a fake ``cuda``; "cuda" tensors are DeviceTensors on the CPU."""

    def __init__(self, cuda: FakeCuda) -> None:
        super().__init__("torch")
        self.cuda = cuda
        self.backends = types.SimpleNamespace(cudnn=types.SimpleNamespace(benchmark=False))

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def device(self, *args: Any, **kwargs: Any) -> torch.device:
        return torch.device("cpu")

    def empty(self, *size: Any, dtype: Any = None, device: Any = None, pin_memory: bool = False) -> DeviceTensor:
        return torch.empty(*size, dtype=dtype).as_subclass(DeviceTensor)


# -- tensorrt ------------------------------------------------------------------------------------
class FakeLogger:
    WARNING = 2
    INFO = 3

    def __init__(self, severity: int = 2) -> None:
        self.severity = severity


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.onnx = b""
        self.inputs: list[types.SimpleNamespace] = []
        self.output = ""

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> types.SimpleNamespace:
        return self.inputs[index]


class FakeParser:
    def __init__(self, network: FakeNetwork) -> None:
        self.network = network
        self.errors: list[str] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> str:
        return self.errors[index]

    def parse(self, data: bytes) -> bool:
        import onnx

        try:
            model = onnx.load_from_string(bytes(data))
        except Exception as e:  # noqa: BLE001 - the parser reports, it does not raise
            self.errors.append(str(e))
            return False
        graph = model.graph
        half = graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
        self.network.inputs = [types.SimpleNamespace(name=graph.input[0].name, half=half)]
        self.network.output = graph.output[0].name
        self.network.onnx = bytes(data)
        return True


class FakeProfile:
    def __init__(self, trt: FakeTensorRT) -> None:
        self.trt = trt
        self.shapes: dict[str, list[tuple[int, ...]]] = {}

    def set_shape(self, name: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002 - TensorRT's names
        dims = [tuple(int(v) for v in d) for d in (min, opt, max)]
        self.trt.calls.append(("set_shape", name, *dims))
        if len({len(d) for d in dims}) != 1 or not all(a <= b <= c for a, b, c in zip(*dims)):
            raise ValueError(f"profile for {name}: need min <= opt <= max, got {dims}")
        self.shapes[name] = dims


class FakeTimingCache:
    def __init__(self, data: bytes, serialized: bytes) -> None:
        self.data = data
        self.serialized = serialized

    def serialize(self) -> bytes:
        return self.serialized


class FakeConfig:
    def __init__(self, trt: FakeTensorRT) -> None:
        self.trt = trt
        self.flags: set[Any] = set()
        self.profiles: list[FakeProfile] = []
        self.pool_limits: dict[Any, int] = {}
        self.cache: FakeTimingCache | None = None

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.pool_limits[pool] = size

    def set_flag(self, flag: Any) -> None:
        self.flags.add(flag)

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
        return FakeTimingCache(data, self.trt.timing_bytes)

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self.cache = cache
        return True

    def get_timing_cache(self) -> FakeTimingCache | None:
        return self.cache

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class FakeBuilder:
    def __init__(self, trt: FakeTensorRT) -> None:
        self.trt = trt

    def create_network(self, flags: int = 0) -> FakeNetwork:
        return FakeNetwork(flags)

    def create_builder_config(self) -> FakeConfig:
        return FakeConfig(self.trt)

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile(self.trt)

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes | None:
        if len(config.profiles) != 1 or network.inputs[0].name not in config.profiles[0].shapes:
            return None  # a dynamic input needs its profile
        lo, opt, hi = config.profiles[0].shapes[network.inputs[0].name]
        if self.trt.shrink_batch is not None:  # a stale or foreign plan: narrower than asked
            hi = (min(hi[0], self.trt.shrink_batch), *hi[1:])
            opt = tuple(min(a, b) for a, b in zip(opt, hi))
        header = {"input": network.inputs[0].name, "output": network.output, "half": network.inputs[0].half,
                  "profile": [lo, opt, hi], "fp16_flag": "FP16" in config.flags, "flags": network.flags}
        self.trt.builds.append(header)
        if self.trt.plan_bytes is not None:
            return self.trt.plan_bytes
        return json.dumps(header).encode() + b"\n" + network.onnx


class FakeRuntime:
    def __init__(self, trt: FakeTensorRT) -> None:
        self.trt = trt

    def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
        head, _, onnx_bytes = bytes(data).partition(b"\n")
        try:
            header = json.loads(head)
        except ValueError:
            return None
        engine = FakeEngine(self.trt, header, onnx_bytes)
        self.trt.engines.append(engine)
        return engine


@dataclass
class _ContextState:
    """What a context's finaliser may see without keeping the context alive."""

    number: int
    in_flight: Op | None = None

    def busy(self) -> bool:
        return self.in_flight is not None and not self.in_flight.done


def _dropped(state: _ContextState, cuda: FakeCuda) -> None:
    if state.busy():
        cuda.misuse(f"execution context {state.number} dropped while its execution is in flight")


class FakeEngine:
    def __init__(self, trt: FakeTensorRT, header: dict, onnx_bytes: bytes) -> None:
        self.trt = trt
        self.header = header
        self.profile = [tuple(d) for d in header["profile"]]
        self.onnx = onnx_bytes
        self._session: Any = None
        self._out_shapes: dict[tuple[int, ...], tuple[int, ...]] = {}

    @property
    def num_io_tensors(self) -> int:
        return 2

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    def get_tensor_name(self, index: int) -> str:
        return (self.header["input"], self.header["output"])[index]

    def get_tensor_mode(self, name: str) -> str:
        return self.trt.TensorIOMode.INPUT if name == self.header["input"] else self.trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> str:
        return self.trt.DataType.HALF if self.header["half"] else self.trt.DataType.FLOAT

    def get_tensor_profile_shape(self, name: str, index: int) -> list[tuple[int, ...]]:
        return list(self.profile)

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self)

    def accepts(self, shape: tuple[int, ...]) -> bool:
        lo, _, hi = self.profile
        return len(shape) == len(lo) and all(a <= v <= b for a, v, b in zip(lo, shape, hi))

    def run(self, x: np.ndarray) -> np.ndarray:
        if self._session is None:
            import onnxruntime as ort

            self._session = ort.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
        return self._session.run(None, {self.header["input"]: x})[0]

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if shape not in self._out_shapes:
            self._out_shapes[shape] = tuple(self.run(np.zeros(shape, self.np_dtype)).shape)
        return self._out_shapes[shape]

    @property
    def np_dtype(self) -> type:
        return np.float16 if self.header["half"] else np.float32


class FakeContext:
    numbers = itertools.count(1)

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.cuda = engine.trt.cuda
        self.state = _ContextState(next(self.numbers))
        self.shape: tuple[int, ...] | None = None
        self.addresses: dict[str, int] = {}
        weakref.finalize(self, _dropped, self.state, self.cuda)

    @property
    def number(self) -> int:
        return self.state.number

    def _idle(self, what: str) -> None:
        if self.state.busy():
            raise self.cuda.misuse(f"{what} on execution context {self.number} while its execution is in flight")

    def _log(self, *call: Any) -> None:
        self.engine.trt.calls.append((call[0], self.number, *call[1:]))

    def set_input_shape(self, name: str, shape: Any) -> bool:
        self._idle("set_input_shape")
        shape = tuple(int(v) for v in shape)
        ok = name == self.engine.header["input"] and self.engine.accepts(shape)
        self._log("set_input_shape", name, shape, ok)
        if ok:
            self.shape = shape
        return ok

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if self.shape is None:
            return (-1, -1, -1, -1)
        return self.shape if name == self.engine.header["input"] else self.engine.output_shape(self.shape)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self._idle("set_tensor_address")
        self._log("set_tensor_address", name, address)
        if name not in (self.engine.header["input"], self.engine.header["output"]):
            return False
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self._idle("execute_async_v3")
        self._log("execute_async_v3", stream_handle)
        stream = self.cuda.streams.get(stream_handle)
        if stream is None:
            raise self.cuda.misuse(f"execute_async_v3 on an unknown stream {stream_handle:#x}")
        inp, out = self.engine.header["input"], self.engine.header["output"]
        if self.shape is None or inp not in self.addresses or out not in self.addresses:
            return False
        dtype = self.engine.np_dtype
        x = _read(self.addresses[inp], self.shape, dtype)
        y = np.ascontiguousarray(self.engine.run(x).astype(dtype))
        ctypes.memmove(self.addresses[out], y.ctypes.data, y.nbytes)
        op = Op("exec", self.state)
        stream.ops.append(op)
        self.state.in_flight = op
        return True


def _read(address: int, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    count = int(np.prod(shape))
    buffer = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(address)
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape).copy()


class FakeTensorRT(types.ModuleType):
    """The ``tensorrt`` module. ``calls`` records profile shapes and each context call in order."""

    def __init__(self, cuda: FakeCuda, version: str = "10.9.0", fp16_flag: bool = True,
                 plan_bytes: bytes | None = None, timing_bytes: bytes = b"timing cache") -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.cuda = cuda
        self.plan_bytes = plan_bytes  # a fixed plan (cache tests) instead of header + ONNX
        self.timing_bytes = timing_bytes
        self.shrink_batch: int | None = None
        self.calls: list[tuple[Any, ...]] = []
        self.builds: list[dict] = []
        self.engines: list[FakeEngine] = []
        self.Logger = FakeLogger
        self.BuilderFlag = types.SimpleNamespace(**({"FP16": "FP16"} if fp16_flag else {}))
        self.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5)
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
        self.TensorIOMode = types.SimpleNamespace(NONE="none", INPUT="input", OUTPUT="output")
        self.DataType = types.SimpleNamespace(FLOAT="float", HALF="half")

    def Builder(self, logger: FakeLogger) -> FakeBuilder:  # noqa: N802 - TensorRT's names
        return FakeBuilder(self)

    def OnnxParser(self, network: FakeNetwork, logger: FakeLogger) -> FakeParser:  # noqa: N802
        return FakeParser(network)

    def Runtime(self, logger: FakeLogger) -> FakeRuntime:  # noqa: N802
        return FakeRuntime(self)

    def context_calls(self) -> list[tuple[Any, ...]]:
        """The calls made on execution contexts, in order."""
        kinds = ("set_input_shape", "set_tensor_address", "execute_async_v3")
        return [c for c in self.calls if c[0] in kinds]


# -- installing ----------------------------------------------------------------------------------
@dataclass
class FakeGpu:
    cuda: FakeCuda
    torch: FakeTorch
    trt: FakeTensorRT
    undo: list[Any] = field(default_factory=list)

    def check(self) -> None:
        """No misuse so far, dropped contexts included."""
        import gc

        gc.collect()
        assert not self.cuda.misuses, self.cuda.misuses


def make_fakes(**trt_options: Any) -> FakeGpu:
    cuda = FakeCuda()
    return FakeGpu(cuda, FakeTorch(cuda), FakeTensorRT(cuda, **trt_options))


def install(monkeypatch: Any, **trt_options: Any) -> FakeGpu:
    """Fakes in place for one test: ``import tensorrt`` and the backends' ``require_cuda``."""
    from streamsr.backends import cuda_backend, tensorrt_backend

    fakes = make_fakes(**trt_options)
    monkeypatch.setitem(sys.modules, "tensorrt", fakes.trt)
    monkeypatch.setattr(tensorrt_backend, "require_cuda", lambda: fakes.torch)
    monkeypatch.setattr(cuda_backend, "require_cuda", lambda: fakes.torch)
    return fakes


def install_for_process(**trt_options: Any) -> FakeGpu:
    """The same, for a whole process (a subprocess that builds a plan and exits)."""
    from streamsr.backends import tensorrt_backend

    fakes = make_fakes(**trt_options)
    sys.modules["tensorrt"] = fakes.trt
    tensorrt_backend.require_cuda = lambda: fakes.torch
    return fakes
