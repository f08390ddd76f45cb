"""TensorRT from our ONNX files, I/O in torch CUDA tensors on the backend's own stream (no pycuda).

Written against the TensorRT 10 and 11 Python APIs: TensorRT 10 enables fp16 kernels with
the FP16 builder flag; TensorRT 11 builds strongly typed networks only, so fp16 there means
building from an fp16 ONNX (streamsr.onnx_fp16). TensorRT cannot be installed on the
development machines: this module has not been run there (see README); the tests drive it
with a fake ``tensorrt`` module and a fake ``torch.cuda`` (tests/fake_gpu.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamsr.backends.base import TILE_OVERLAP, Done
from streamsr.backends.cuda_backend import require_cuda
from streamsr.backends.cuda_io import CudaPlanes, GpuBackend, Pending
from streamsr.backends.engine_cache import (
    DEFAULT_BATCH, EngineKey, ShapeProfile, cache_dir, plan_path,
    stale_reasons, stream_tile, write_key,
)
from streamsr.durable import atomic_path, atomic_write_bytes
from streamsr.errors import BackendUnavailable, ConfigError, ModelError
from streamsr.hashing import file_sha256
from streamsr.tiling import run_tiled
from streamsr.types import ModelCard

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 2 << 30


def require_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("TensorRT is not installed (pip install 'streamsr[tensorrt]')") from None
    return trt


def tensorrt_major(trt: Any) -> int:
    return int(trt.__version__.split(".")[0])


def strongly_typed(trt: Any) -> bool:
    """TensorRT 11 removed the precision builder flags: every network is strongly typed."""
    return tensorrt_major(trt) >= 11 or not hasattr(trt.BuilderFlag, "FP16")


def onnx_for_build(card: ModelCard, precision: str, trt: Any, folder: Path) -> Path:
    """The ONNX file to parse: fp32, or for strongly typed fp16 an fp16 copy (made once)."""
    if precision == "fp32" or not strongly_typed(trt):
        return card.file(card.onnx)
    if card.onnx_fp16 and card.file(card.onnx_fp16).exists():
        return card.file(card.onnx_fp16)
    from streamsr.onnx_fp16 import convert_file

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{card.name}.fp16.onnx"
    if not target.exists():
        with atomic_path(target) as temp:
            convert_file(card.file(card.onnx), temp)
    return target


def engine_key(card: ModelCard, onnx_path: Path, profile: ShapeProfile, precision: str, trt: Any, torch: Any) -> EngineKey:
    major, minor = torch.cuda.get_device_capability()
    return EngineKey(
        onnx_sha256=file_sha256(onnx_path),
        profile=profile,
        precision=precision,
        tensorrt_version=trt.__version__,
        gpu_name=torch.cuda.get_device_name(),
        compute_capability=f"{major}.{minor}",
    )


def build_plan(onnx_path: Path, profile: ShapeProfile, precision: str, channels: int, trt: Any,
               timing_cache: Path) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    typed = strongly_typed(trt)
    flags = 0
    if typed and tensorrt_major(trt) < 11:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16" and not typed:
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        raise ConfigError("the tensorrt engine builds fp32 or fp16 here, not bf16")
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    opt_profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    opt_profile.set_shape(name, *[(n, channels, h, w) for n, h, w in (profile.min, profile.opt, profile.max)])
    config.add_optimization_profile(opt_profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ModelError(f"TensorRT could not build an engine from {onnx_path.name}")
    atomic_write_bytes(timing_cache, memoryview(config.get_timing_cache().serialize()))
    return bytes(memoryview(plan))


def ensure_plan(card: ModelCard, profile: ShapeProfile, precision: str) -> Path:
    """The cached plan for this model, profile, precision, TensorRT and GPU; built if missing."""
    trt = require_tensorrt()
    torch = require_cuda()
    folder = cache_dir(card)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = onnx_for_build(card, precision, trt, folder)
    key = engine_key(card, onnx_path, profile, precision, trt, torch)
    plan = plan_path(folder, card, key)
    if plan.exists():
        return plan
    reasons = stale_reasons(folder, card, key)
    if reasons:
        log.warning("no cached TensorRT engine fits: %s", " | ".join(reasons))
    log.warning("building a TensorRT engine for %s (%s, batch %d..%d, inputs up to %dx%d); this takes a while once",
                card.name, precision, profile.min[0], profile.max[0], profile.max[2], profile.max[1])
    data = build_plan(onnx_path, profile, precision, card.channels, trt, folder / "timing.cache")
    write_key(plan, key)  # the key first: a plan never exists without the JSON that explains it
    atomic_write_bytes(plan, data)
    return plan


@dataclass
class _Slot:
    """One in-flight place: its own execution context and the event after its last execution."""

    context: Any
    done: Any = None

    def wait(self) -> None:
        """Block until this slot's last execution has finished (at once when it has)."""
        if self.done is not None:
            self.done.synchronize()
            self.done = None


@dataclass
class _Loaded:
    """The engine for one stream: frame size, batch and pixel ceiling it was planned for."""

    setup: tuple[int, int, int, int | None]  # height, width, batch, max_pixels
    profile: ShapeProfile
    tile: int | None
    plan: Path
    runtime: Any
    engine: Any
    slots: list[_Slot]
    input: str
    output: str
    out_dtype: Any
    io: CudaPlanes


class TensorRTBackend(GpuBackend):
    """TensorRT with ``in_flight`` execution contexts, one per batch in flight.

    The engine's optimisation profile comes from ``ShapeProfile.for_stream``: the frame size
    of the first call, ``batch`` (the pipeline tells it through ``expect_batch``) and
    ``max_pixels``. Frames over the ceiling are tiled with one tile size per stream, so every
    call fits the profile. Batch k+2 reuses batch k's context only after batch k's execution
    has finished, and an engine is replaced (a new frame size) only after every execution on
    it has finished. Work runs on the backend's own stream: given the default stream, TensorRT
    adds synchronisations of its own.
    """

    name = "tensorrt"

    def __init__(self, card: ModelCard, *, threads: int | None = None, precision: str = "fp16",
                 batch: int = DEFAULT_BATCH) -> None:
        super().__init__(card, threads=threads, precision=precision)
        self._trt = require_tensorrt()
        self._torch = require_cuda()
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"the tensorrt engine runs fp32 or fp16, not {precision}")
        self.batch = batch
        self._logger = self._trt.Logger(self._trt.Logger.WARNING)  # outlives the runtimes that use it
        self._loaded: _Loaded | None = None
        self._turn = 0
        self._stream: Any = None
        self._warned_split = False

    def expect_batch(self, batch: int) -> None:
        """The most frames per call the caller will send: the profile's optimum and maximum."""
        if batch < 1:
            raise ConfigError(f"a batch must be at least 1 frame, not {batch}")
        self.batch = batch

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.submit(batch).result()

    def submit(self, batch: np.ndarray) -> Pending | Done:
        n, h, w = batch.shape[:3]
        loaded = self._prepare(h, w)
        if n > loaded.profile.max[0]:
            return Done(self._run_in_parts(batch, loaded.profile.max[0]))
        if loaded.tile is not None:
            return Done(run_tiled(self._run_whole, batch, self.card.scale, loaded.tile, TILE_OVERLAP))
        return self._submit_whole(batch)

    def _run_in_parts(self, batch: np.ndarray, most: int) -> np.ndarray:
        if not self._warned_split:
            log.warning("batches of %d frames arrive but the TensorRT engine takes at most %d; running them "
                        "in parts (the caller should call expect_batch, or build with --batch %d)",
                        batch.shape[0], most, batch.shape[0])
            self._warned_split = True
        return np.concatenate([self.run(batch[i : i + most]) for i in range(0, batch.shape[0], most)])

    def _prepare(self, height: int, width: int) -> _Loaded:
        """The engine planned for this frame size, batch and ceiling; loaded (or built) on a change."""
        setup = (height, width, self.batch, self.max_pixels)
        if self._loaded is None or self._loaded.setup != setup:
            self._release()
            self._loaded = self._load(setup)
        return self._loaded

    def _load(self, setup: tuple[int, int, int, int | None]) -> _Loaded:
        torch, trt = self._torch, self._trt
        height, width, batch, max_pixels = setup
        profile = ShapeProfile.for_stream(height, width, batch, max_pixels)
        plan = ensure_plan(self.card, profile, self.precision)
        runtime = trt.Runtime(self._logger)
        engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        if engine is None:
            raise ModelError(f"TensorRT could not load {plan}; delete it to rebuild")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{plan.name} has inputs {inputs} and outputs {outputs}; a model takes one of each")
        slots = [_Slot(engine.create_execution_context()) for _ in range(self.in_flight)]
        if any(slot.context is None for slot in slots):
            raise ModelError(f"TensorRT could not create an execution context for {plan.name} (out of GPU memory?)")
        if self._stream is None:
            self._stream = torch.cuda.Stream(torch.device("cuda"))
        return _Loaded(
            setup=setup, profile=profile, tile=stream_tile(height, width, batch, max_pixels), plan=plan,
            runtime=runtime, engine=engine, slots=slots, input=inputs[0], output=outputs[0],
            out_dtype=self._torch_dtype(engine.get_tensor_dtype(outputs[0])),
            io=CudaPlanes(torch, torch.device("cuda"), self._torch_dtype(engine.get_tensor_dtype(inputs[0]))),
        )

    def _torch_dtype(self, trt_dtype: Any) -> Any:
        return self._torch.float16 if trt_dtype == self._trt.DataType.HALF else self._torch.float32

    @property
    def _io(self) -> CudaPlanes:  # GpuBackend.submit_planes upscales chroma through it
        assert self._loaded is not None, "submit() loads the engine before chroma is sent"
        return self._loaded.io

    def _next_slot(self, loaded: _Loaded) -> _Slot:
        slot = loaded.slots[self._turn % len(loaded.slots)]
        self._turn += 1
        slot.wait()  # a no-op when the caller collected that batch (at most in_flight uncollected)
        return slot

    def _submit_whole(self, batch: np.ndarray) -> Pending:
        loaded = self._loaded
        assert loaded is not None, "submit() loads the engine first"
        torch = self._torch
        slot = self._next_slot(loaded)
        context = slot.context
        with torch.cuda.stream(self._stream):
            x = loaded.io.upload(batch, channels_last=False, full_range=self.luma.full_range)
            shape = tuple(x.shape)
            if not context.set_input_shape(loaded.input, shape):
                raise ModelError(f"the TensorRT engine {loaded.plan.name} does not take input {shape}: it takes "
                                 f"{_accepted(loaded)}; delete the plan to rebuild it")
            out = torch.empty(tuple(context.get_tensor_shape(loaded.output)), dtype=loaded.out_dtype,
                              device=x.device)
            for name, tensor in ((loaded.input, x), (loaded.output, out)):
                if not context.set_tensor_address(name, tensor.data_ptr()):
                    raise ModelError(f"TensorRT refused the address of {name!r} ({loaded.plan.name})")
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise ModelError(f"TensorRT execution failed ({loaded.plan.name}, input {shape})")
            slot.done = torch.cuda.Event()
            slot.done.record(self._stream)
            return loaded.io.download(out, full_range=self.luma.full_range)

    def _release(self) -> None:
        """Drop the engine after every execution on it has finished."""
        if self._loaded is None:
            return
        for slot in self._loaded.slots:
            slot.wait()
        self._loaded = None

    def close(self) -> None:
        self._release()

    def describe(self) -> str:
        return f"tensorrt {self._trt.__version__} ({self.precision}, {self._torch.cuda.get_device_name()})"


def _accepted(loaded: _Loaded) -> str:
    """The engine's own profile (it may differ from the one asked for: a foreign plan)."""
    low, _, high = (tuple(d) for d in loaded.engine.get_tensor_profile_shape(loaded.input, 0))
    (n0, _, h0, w0), (n1, _, h1, w1) = low, high
    return f"batch {n0}..{n1}, height {h0}..{h1}, width {w0}..{w1}"
