"""TensorRT from our ONNX files, I/O in torch CUDA tensors on torch's current stream (no pycuda).

Written against the TensorRT 10 and 11 Python APIs: TensorRT 10 enables fp16 kernels with
the FP16 builder flag; TensorRT 11 builds strongly typed networks only, so fp16 there means
building from an fp16 ONNX (streamsr.onnx_fp16). TensorRT cannot be installed on the
development machines: this module has not been run there (see README).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from streamsr.backends.cuda_backend import require_cuda
from streamsr.backends.cuda_io import CudaPlanes, GpuBackend, Pending
from streamsr.backends.engine_cache import (
    EngineKey, ShapeProfile, atomic_path, atomic_write_bytes, cache_dir, file_sha256, plan_path, stale_reasons,
    write_key,
)
from streamsr.errors import BackendUnavailable, ConfigError, ModelError
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
        log.warning("cached TensorRT engine does not fit, rebuilding: %s", " | ".join(reasons))
    log.warning("building a TensorRT engine for %s (%s, batch %d..%d, %dx%d); this takes a while once",
                card.name, precision, profile.min[0], profile.max[0], profile.max[2], profile.max[1])
    data = build_plan(onnx_path, profile, precision, card.channels, trt, folder / "timing.cache")
    write_key(plan, key)  # the key first: a plan never exists without the JSON that explains it
    atomic_write_bytes(plan, data)
    return plan


class TensorRTBackend(GpuBackend):
    name = "tensorrt"

    def __init__(self, card: ModelCard, *, threads: int | None = None, precision: str = "fp16",
                 max_batch: int = 16) -> None:
        super().__init__(card, threads=threads, precision=precision)
        self._trt = require_tensorrt()
        self._torch = require_cuda()
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"the tensorrt engine runs fp32 or fp16, not {precision}")
        self.max_batch = max_batch
        self._profile: ShapeProfile | None = None
        self._context = None
        self._io: CudaPlanes | None = None

    def _load(self, batch: int, height: int, width: int) -> None:
        """Build or load the engine for the stream's frame size (first batch, or a size change)."""
        torch, trt = self._torch, self._trt
        self._profile = ShapeProfile.for_stream(height, width, max(self.max_batch, batch))
        plan = ensure_plan(self.card, self._profile, self.precision)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        if self._engine is None:
            raise ModelError(f"TensorRT could not load {plan}; delete it to rebuild")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._input = next(n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self._output = next(n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        io_dtype = torch.float16 if self._engine.get_tensor_dtype(self._input) == trt.DataType.HALF else torch.float32
        self._out_dtype = (
            torch.float16 if self._engine.get_tensor_dtype(self._output) == trt.DataType.HALF else torch.float32
        )
        self._io = CudaPlanes(torch, torch.device("cuda"), io_dtype)

    def _submit_whole(self, batch: np.ndarray) -> Pending:
        n, h, w = batch.shape[:3]
        if self._profile is None or not self._profile.covers(n, h, w):
            self._load(n, h, w)
        torch = self._torch
        x = self._io.upload(batch, channels_last=False)
        self._context.set_input_shape(self._input, tuple(x.shape))
        out = torch.empty(tuple(self._context.get_tensor_shape(self._output)), dtype=self._out_dtype, device="cuda")
        self._context.set_tensor_address(self._input, x.data_ptr())
        self._context.set_tensor_address(self._output, out.data_ptr())
        if not self._context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise ModelError("TensorRT execution failed")
        return self._io.download(out)


    def describe(self) -> str:
        return f"tensorrt {self._trt.__version__} ({self.precision}, {self._torch.cuda.get_device_name()})"
