"""The GPU engines: everything that can be checked without a GPU, and the GPU checks themselves.

The ``gpu`` tests run only where torch sees a CUDA device; ``tensorrt`` ones only where
TensorRT is installed too. The development machines and CI have neither: there the same
backends run against fakes (tests/test_tensorrt_fake.py, tests/test_cuda_graphs_fake.py).
"""
from __future__ import annotations

import types
from dataclasses import replace

import numpy as np
import pytest

from streamsr.backends import create_backend, cuda_visible
from streamsr.backends.engine_cache import EngineKey, ShapeProfile, plan_path, stale_reasons, write_key
from streamsr.backends.tensorrt_backend import onnx_for_build, strongly_typed
from streamsr.commands.cli import main
from streamsr.errors import BackendUnavailable
from tiny_model import write_tiny_model

needs_gpu = pytest.mark.skipif(not cuda_visible(), reason="needs a CUDA GPU visible to torch")


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401 - presence only
    except ImportError:
        return False
    return True


@pytest.fixture
def card(tmp_path):
    return write_tiny_model(tmp_path, scale=2, nearest=True)


def _key(**changes) -> EngineKey:
    base = EngineKey(onnx_sha256="ab" * 32, profile=ShapeProfile.for_stream(540, 960, 16), precision="fp16",
                     tensorrt_version="10.9.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    return replace(base, **changes)


# -- engine cache ---------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    {"onnx_sha256": "cd" * 32},
    {"profile": ShapeProfile.for_stream(1080, 1920, 16)},
    {"profile": ShapeProfile.for_stream(540, 960, 4)},
    {"precision": "fp32"},
    {"tensorrt_version": "11.0.0"},
    {"gpu_name": "NVIDIA H200"},
    {"compute_capability": "8.9"},
])
def test_every_key_field_changes_the_cache_key(change):
    assert _key(**change).digest() != _key().digest()
    assert _key().digest() == _key().digest()


def test_a_stale_plan_is_explained(tmp_path, card):
    old = _key(tensorrt_version="10.3.0")
    plan = plan_path(tmp_path, card, old)
    plan.write_bytes(b"plan")
    write_key(plan, old)
    reasons = stale_reasons(tmp_path, card, _key())
    assert len(reasons) == 1 and "tensorrt_version: 10.3.0 -> 10.9.0" in reasons[0]
    assert stale_reasons(tmp_path, card, old) == []


def test_profile_derived_from_the_stream():
    p = ShapeProfile.for_stream(540, 960, 16)
    assert p.min == (1, 540, 960) and p.max == (16, 540, 960)
    assert p.covers(7, 540, 960) and not p.covers(17, 540, 960) and not p.covers(1, 1080, 1920)


# -- TensorRT 10 and 11 precision handling ---------------------------------------------------
def _fake_trt(version: str, fp16_flag: bool):
    flags = types.SimpleNamespace(**({"FP16": 1} if fp16_flag else {}))
    return types.SimpleNamespace(__version__=version, BuilderFlag=flags)


def test_tensorrt_10_builds_fp16_from_the_fp32_onnx(card, tmp_path):
    trt = _fake_trt("10.9.0", fp16_flag=True)
    assert not strongly_typed(trt)
    assert onnx_for_build(card, "fp16", trt, tmp_path / "cache") == card.file(card.onnx)


def test_tensorrt_11_builds_fp16_from_an_fp16_onnx(card, tmp_path):
    onnx = pytest.importorskip("onnx")
    trt = _fake_trt("11.0.0", fp16_flag=False)
    assert strongly_typed(trt)
    path = onnx_for_build(card, "fp16", trt, tmp_path / "cache")
    assert path != card.file(card.onnx)
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert onnx_for_build(card, "fp32", trt, tmp_path / "cache") == card.file(card.onnx)


# -- messages and fallbacks ----------------------------------------------------------------
@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed here")
def test_missing_tensorrt_says_which_extra(card, capsys):
    with pytest.raises(BackendUnavailable, match=r"TensorRT is not installed \(pip install 'streamsr\[tensorrt\]'\)"):
        create_backend("tensorrt", card)
    code = main(["enhance", "in.png", "-o", "out", "--engine", "tensorrt", "--model", str(card.path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("streamsr: error:")


@pytest.mark.skipif(cuda_visible(), reason="a GPU is visible here")
def test_cuda_without_a_gpu_is_one_clear_error(card):
    with pytest.raises(BackendUnavailable, match="CUDA|torch"):
        create_backend("cuda", card)


# -- on a GPU ------------------------------------------------------------------------------
@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("graphs", [False, True])
def test_cuda_matches_onnxruntime_within_fp16_tolerance(tmp_path, graphs):
    torch = pytest.importorskip("torch")
    from streamsr.backends.cuda_backend import CudaBackend
    from streamsr.models import build_model

    model = build_model("espcn", 2)
    weights = tmp_path / "espcn_x2.pt"
    torch.save(model.state_dict(), weights)
    onnx_path = tmp_path / "espcn_x2.onnx"
    torch.onnx.export(model.eval(), torch.rand(1, 1, 32, 32), str(onnx_path), input_names=["lr"],
                      output_names=["sr"], dynamic_axes={"lr": {0: "n", 2: "h", 3: "w"}}, dynamo=False)
    card_ = write_tiny_model(tmp_path, scale=2)
    card_ = replace(card_, arch="espcn", arch_kwargs={}, onnx=onnx_path.name, torch_weights=weights.name)
    batches = [np.random.default_rng(k).integers(0, 256, (4, 72, 96), dtype=np.uint8) for k in range(3)]
    with create_backend("onnxruntime", card_) as ref_backend:
        refs = [ref_backend.run(batch).astype(int) for batch in batches]
    with CudaBackend(card_, precision="fp16", cuda_graphs=graphs) as gpu:
        pending = [gpu.submit(batch) for batch in batches]  # different inputs, more than in_flight
        outs = [p.result().astype(int) for p in pending]
    for out, ref in zip(outs, refs):  # each batch's own answer, not a later batch's
        assert np.abs(out - ref).max() <= 2 and np.abs(out - ref).mean() < 0.5


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_gpu
@pytest.mark.skipif(not _has_tensorrt(), reason="needs TensorRT")
def test_tensorrt_matches_onnxruntime_with_batches_in_flight(card, tmp_path, monkeypatch):
    from streamsr.backends.tensorrt_backend import TensorRTBackend

    monkeypatch.setenv("STREAMSR_CACHE", str(tmp_path / "cache"))
    batches = [np.random.default_rng(k).integers(0, 256, (2, 64, 96), dtype=np.uint8) for k in range(3)]
    big = np.random.default_rng(9).integers(0, 256, (2, 150, 200), dtype=np.uint8)
    with create_backend("onnxruntime", card) as ref_backend:
        refs = [ref_backend.run(batch).astype(int) for batch in batches]
        big_ref = ref_backend.run(big).astype(int)
    with TensorRTBackend(card, precision="fp32") as trt:
        trt.expect_batch(2)
        outs = [p.result().astype(int) for p in [trt.submit(batch) for batch in batches]]
        trt.max_pixels = 2 * 80 * 80  # tiles, on one engine
        big_out = trt.run(big).astype(int)
    for out, ref in zip([*outs, big_out], [*refs, big_ref]):
        assert np.abs(out - ref).max() <= 1


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed here")
def test_build_engine_without_tensorrt_is_one_line(card, capsys):
    code = main(["build-engine", "--model", str(card.path), "--width", "96", "--height", "64"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4 and err == ["streamsr: error: TensorRT is not installed (pip install 'streamsr[tensorrt]')"]


@pytest.mark.skipif(cuda_visible(), reason="a GPU is visible here")
def test_bench_gpu_without_a_gpu_is_one_line(capsys):
    assert main(["bench-gpu"]) == 4
    assert capsys.readouterr().err.strip().splitlines() == ["streamsr: error: bench-gpu needs a CUDA GPU visible to torch"]


def test_pipeline_takes_chroma_from_a_backend_that_upscales_it():
    """The plumbing GPU backends use (submit_planes), checked with a CPU stand-in."""
    import cv2

    from streamsr.backends.base import Done
    from streamsr.pipeline.pipeline import Pipeline
    from streamsr.postprocess import finish
    from streamsr.sinks.null import NullSink
    from streamsr.types import Frame

    class ChromaBackend:
        upscales_chroma = True

        def submit_planes(self, luma, chroma):
            ys = np.stack([cv2.resize(y, None, fx=2, fy=2) for y in luma])
            cs = np.stack([[np.full((y.shape[0] // 2, y.shape[1] // 2), 7, np.uint8)] * 2 for y in ys])
            return Done((ys, cs))

    class Keep(NullSink):
        def write(self, frame):
            super().write(frame)
            self.last = frame

    frames = [Frame(index=i, planes=(np.full((8, 12), i, np.uint8), np.zeros((4, 6), np.uint8),
                                     np.zeros((4, 6), np.uint8))) for i in range(5)]
    sink = Keep()
    Pipeline(frames, ChromaBackend(), sink, post=lambda f: finish(f, 2)).run()
    y, cb, cr = sink.last.planes
    assert sink.frames == 5 and y.shape == (16, 24) and (y == 4).all()
    assert cb.shape == (8, 12) and (cb == 7).all() and (cr == 7).all()  # not upscaled a second time
