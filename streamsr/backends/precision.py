"""What ``--precision auto`` means on a CPU: the fastest precision this CPU runs natively.

The rule, in order, for the CPU engines (GPU engines keep their own default, fp16):

1. ``bf16`` where the CPU computes bf16 natively (AVX512-BF16 or AMX) and the engine runs it
   (OpenVINO): twice fp32's speed at no measurable PSNR loss;
2. ``int8`` where the CPU has VNNI (AVX512-VNNI or AVX-VNNI), the model ships an int8 file,
   and the card's measured int8 loss is within the card's tolerance (ONNX Runtime, OpenVINO);
3. ``fp32`` otherwise. Without VNNI, x86 int8 kernels sum pairs in 16 bits, which forces
   7-bit weights and gives little speed, so int8 stays a choice (``--precision int8``) there.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from streamsr.types import ModelCard

CPU_ENGINES = ("openvino", "onnxruntime", "torch")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_vnni", "avx_vnni"} & flags)


def int8_acceptable(card: ModelCard) -> bool:
    """The card ships an int8 file whose measured loss is within its stated tolerance."""
    return bool(
        card.onnx_int8
        and card.int8_psnr_loss_db is not None
        and card.int8_tolerance_db is not None
        and card.int8_psnr_loss_db <= card.int8_tolerance_db
    )


def auto_precision(engine: str, card: ModelCard, default: str, flags: frozenset[str] | None = None) -> str:
    """The precision ``auto`` resolves to for ``engine`` on this CPU (``default`` for GPU engines)."""
    if engine not in CPU_ENGINES:
        return default
    if engine == "openvino" and has_native_bf16(flags):
        return "bf16"
    if engine in ("openvino", "onnxruntime") and has_vnni(flags) and int8_acceptable(card):
        return "int8"
    return "fp32"
