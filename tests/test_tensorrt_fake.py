"""TensorRTBackend and the plan builder against a fake ``tensorrt`` and a fake ``torch.cuda``.

TensorRT cannot be installed here and there is no GPU: tests/fake_gpu.py stands in for both
(what it models is described there). These tests run on any CPU machine; the same backend on a
real GPU is tests/test_gpu_engines.py's, skipped without one. Names new with these tests are
imported inside the tests, so that each test fails on its own against the code before them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import fake_gpu
from streamsr.backends import create_backend
from streamsr.backends.base import TILE_OVERLAP
from streamsr.backends.engine_cache import ShapeProfile
from streamsr.errors import StreamSRError
from streamsr.pipeline.pipeline import Pipeline, PipelinePolicy
from streamsr.sinks.null import NullSink
from streamsr.tiling import tile_spans
from streamsr.types import Frame, ModelCard

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("STREAMSR_CACHE", str(tmp_path / "cache"))
    fakes = fake_gpu.install(monkeypatch)
    yield fakes
    fakes.check()


@pytest.fixture
def card(models_dir: Path) -> ModelCard:
    return ModelCard.load(models_dir / "near_x2.json")


@pytest.fixture
def reference(card: ModelCard):
    """The same model on onnxruntime: what every batch must come back as."""
    with create_backend("onnxruntime", card, threads=1) as backend:
        yield backend.run


def _frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(int) - b).max()) <= 1


def _backend(card: ModelCard, batch: int | None = None, max_pixels: int | None = None):
    from streamsr.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(card, precision="fp32")
    if batch is not None:
        backend.expect_batch(batch)
    backend.max_pixels = max_pixels
    return backend


# -- the profile ----------------------------------------------------------------------------------
def _shapes_sent(height: int, width: int, batch: int, max_pixels: int | None) -> set[tuple[int, int, int]]:
    """Every (n, h, w) a TensorRTBackend sends for this stream, recorded from its own tiling."""
    from streamsr.backends.engine_cache import stream_tile

    tile = stream_tile(height, width, batch, max_pixels)
    rows = [(0, height)] if tile is None else [(r0, r1) for r0, r1, _, _ in tile_spans(height, tile, TILE_OVERLAP)]
    cols = [(0, width)] if tile is None else [(c0, c1) for c0, c1, _, _ in tile_spans(width, tile, TILE_OVERLAP)]
    return {(n, r1 - r0, c1 - c0) for n in range(1, batch + 1) for r0, r1 in rows for c0, c1 in cols}


@pytest.mark.parametrize(("height", "width", "batch", "max_pixels"), [
    (48, 64, 4, None), (48, 64, 4, 4 * 48 * 64), (150, 200, 2, 2 * 80 * 80), (1080, 1920, 8, 4_000_000),
])
def test_the_profile_spans_every_shape_sent_with_its_optimum_at_the_stream(height, width, batch, max_pixels):
    profile = ShapeProfile.for_stream(height, width, batch, max_pixels)
    sent = _shapes_sent(height, width, batch, max_pixels)
    assert all(profile.covers(*shape) for shape in sent)
    assert profile.min == tuple(min(s[i] for s in sent) for i in range(3))  # no wider than needed
    assert profile.max == tuple(max(s[i] for s in sent) for i in range(3))
    assert profile.opt == profile.max and profile.opt[0] == batch
    if max_pixels is None or batch * height * width <= max_pixels:
        assert profile.opt == (batch, height, width)
    else:  # tiles: every tile of a frame has one shape (tiling.tile_grid), within the budget
        assert profile.min[1:] == profile.max[1:] and profile.max[1] * profile.max[2] * batch <= max_pixels


def test_the_plan_is_built_with_min_opt_max_over_batch_and_frame(gpu, card, reference):
    backend = _backend(card, batch=4)
    first = _frames(1)  # the first call may be short; the profile is the pipeline's batch
    assert _close(backend.run(first), reference(first))
    assert [c for c in gpu.trt.calls if c[0] == "set_shape"] == [
        ("set_shape", "lr", (1, 1, 48, 64), (4, 1, 48, 64), (4, 1, 48, 64)),
    ]
    four = _frames(4, seed=1)
    assert _close(backend.run(four), reference(four))
    assert len(gpu.trt.builds) == 1
    backend.close()


def test_the_pipeline_tells_the_engine_its_batch(gpu, card):
    frames = [Frame(index=i, planes=(np.full((48, 64), i, np.uint8), np.zeros((24, 32), np.uint8),
                                     np.zeros((24, 32), np.uint8))) for i in range(7)]
    backend = _backend(card)
    Pipeline(frames, backend, NullSink(), PipelinePolicy(max_batch=3)).run()
    profiles = [c[2:] for c in gpu.trt.calls if c[0] == "set_shape"]
    assert profiles == [((1, 1, 48, 64), (3, 1, 48, 64), (3, 1, 48, 64))]
    backend.close()


def test_tiles_of_a_large_frame_run_on_one_engine(gpu, card, reference):
    big = _frames(2, 150, 200, seed=2)
    backend = _backend(card, batch=2, max_pixels=2 * 80 * 80)
    assert _close(backend.run(big), reference(big))
    assert len(gpu.trt.builds) == 1 and len(gpu.trt.engines) == 1
    calls = [c for c in gpu.trt.calls if c[0] == "set_input_shape"]
    assert len(calls) > 1 and len({c[3] for c in calls}) == 1  # several tiles, one shape
    assert all(c[4] for c in calls)  # every shape accepted by the profile
    backend.close()


# -- contexts, streams and batches in flight ---------------------------------------------------------
def test_each_batch_in_flight_comes_back_as_its_own_result(gpu, card, reference):
    """Different inputs: a buffer or context overwritten by a later batch shows as a wrong picture."""
    backend = _backend(card, batch=2)
    inputs = [_frames(2, seed=10 + k) for k in range(5)]
    held = [backend.submit(x) for x in inputs[:3]]  # one more than in_flight: the oldest must survive
    results = [p.result() for p in held]
    later = [backend.submit(x) for x in inputs[3:]]  # as the pipeline drives it: two in flight
    results += [p.result() for p in later]
    for x, y in zip(inputs, results):
        assert _close(y, reference(x))
    contexts = [c[1] for c in gpu.trt.calls if c[0] == "execute_async_v3"]
    assert len(set(contexts)) == backend.in_flight == 2  # one context per batch in flight
    assert contexts == [contexts[0], contexts[1]] * 2 + [contexts[0]]
    backend.close()


def test_a_new_frame_size_waits_for_the_batch_in_flight(gpu, card, reference):
    backend = _backend(card, batch=2)
    small, large = _frames(2, 48, 64, seed=3), _frames(2, 40, 56, seed=4)
    first = backend.submit(small)
    second = backend.submit(large)  # a new engine while the first batch is in flight on the old one
    assert _close(first.result(), reference(small)) and _close(second.result(), reference(large))
    assert len(gpu.trt.engines) == 2
    backend.close()
    gpu.check()  # no context was dropped or changed while its batch ran


def test_contexts_are_set_up_then_run_on_the_backends_stream(gpu, card):
    backend = _backend(card, batch=2)
    for seed in range(3):
        backend.submit(_frames(2, seed=seed)).result()
    calls = gpu.trt.context_calls()
    assert [c[0] for c in calls] == ["set_input_shape", "set_tensor_address", "set_tensor_address",
                                     "execute_async_v3"] * 3
    for k in range(3):
        shape, bind_in, bind_out, run = calls[4 * k : 4 * k + 4]
        assert shape[1] == bind_in[1] == bind_out[1] == run[1]  # one context for the whole batch
        assert shape[2:] == ("lr", (2, 1, 48, 64), True)
        assert (bind_in[2], bind_out[2]) == ("lr", "sr") and bind_in[3] != bind_out[3]
    # one stream of the backend's own, not the legacy default stream (TensorRT syncs on that one)
    handles = {c[2] for c in calls if c[0] == "execute_async_v3"}
    assert len(handles) == 1 and gpu.cuda.streams[handles.pop()] is not gpu.cuda.default
    # on that stream: wait for the upload, run, and the download (another stream) waits for the run
    stream = gpu.cuda.streams[calls[3][2]]
    assert [op.kind for op in stream.ops[:2]] == ["wait", "exec"] and stream.ops[0].target.stream is not stream
    waiting = [other for other in gpu.cuda.streams.values() if other is not stream
               if any(op.kind == "wait" and op.target.stream is stream and op.target.position >= 2 for op in other.ops)]
    assert waiting
    backend.close()


def test_a_shape_the_engine_refuses_is_one_clear_error(gpu, card):
    gpu.trt.shrink_batch = 1  # the builder gives a narrower profile than asked (a foreign plan)
    backend = _backend(card, batch=2)
    with pytest.raises(StreamSRError) as caught:
        backend.run(_frames(2))
    message = str(caught.value)
    assert "\n" not in message and "(2, 1, 48, 64)" in message and "batch 1..1" in message
    assert [c[-1] for c in gpu.trt.calls if c[0] == "set_input_shape"] == [False]
    assert not [c for c in gpu.trt.calls if c[0] == "execute_async_v3"]
    backend.close()


def test_batches_larger_than_planned_run_in_parts_on_the_same_engine(gpu, card, reference, caplog):
    backend = _backend(card, batch=2)
    five = _frames(5, seed=7)
    with caplog.at_level(logging.WARNING, logger="streamsr.backends.tensorrt_backend"):
        assert _close(backend.run(five), reference(five))
    assert len(gpu.trt.builds) == 1 and "in parts" in caplog.text
    assert max(c[3][0] for c in gpu.trt.calls if c[0] == "set_input_shape") == 2
    backend.close()


# -- build-engine agrees with the runtime ------------------------------------------------------------
def test_a_plan_built_ahead_is_the_plan_the_runtime_loads(gpu, card, run_cli):
    built = run_cli("build-engine", "--model", card.path, "--precision", "fp32", "--width", 200, "--height", 150,
                    "--batch", 2, "--max-pixels", 2 * 80 * 80)
    assert built.code == 0, built.err
    plan = Path(built.out.strip())
    assert plan.exists() and len(gpu.trt.builds) == 1
    backend = _backend(card, batch=2, max_pixels=2 * 80 * 80)
    backend.run(_frames(2, 150, 200))
    assert len(gpu.trt.builds) == 1 and backend._loaded is not None and backend._loaded.plan == plan
    backend.close()


def test_build_engine_and_enhance_default_to_the_same_batch(gpu, card, run_cli):
    from streamsr.backends.engine_cache import DEFAULT_BATCH
    from streamsr.commands.cli import build_parser
    from streamsr.enhance import EnhanceOptions

    parser = build_parser()
    build = parser.parse_args(["build-engine", "--width", "64", "--height", "48"])
    enhance = parser.parse_args(["enhance", "in.mp4", "-o", "out.mp4"])
    assert build.batch == enhance.batch == EnhanceOptions().batch == DEFAULT_BATCH
    assert build.max_pixels == enhance.max_pixels is None


def test_enhance_finds_the_plan_build_engine_made(gpu, card, run_cli, clip_factory, tmp_path, model_args):
    clip = clip_factory("trt96x64.mp4", width=96, height=64, frames=9)
    built = run_cli("build-engine", "--model", card.path, "--precision", "fp32", "--width", 96, "--height", 64,
                    "--batch", 4)
    assert built.code == 0, built.err
    out = tmp_path / "out.mp4"
    done = run_cli("enhance", clip.path, "-o", out, *model_args(engine="tensorrt"), "--precision", "fp32",
                   "--batch", 4)
    assert done.code == 0, done.err
    assert len(gpu.trt.builds) == 1  # enhance looked up the same key
    assert {c[3][0] for c in gpu.trt.calls if c[0] == "set_input_shape"} <= {1, 2, 3, 4}
    import av

    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (192, 128)
        assert sum(1 for _ in container.decode(stream)) == clip.frames


def test_bad_max_pixels_for_build_engine_is_one_line(gpu, card, run_cli):
    r = run_cli("build-engine", "--model", card.path, "--width", 640, "--height", 480, "--batch", 4,
                "--max-pixels", 5000)
    assert r.code == 2 and len(r.err_lines) == 1 and "--max-pixels 5000 is too small" in r.err_lines[0]


@pytest.mark.parametrize(("version", "fp16_flag", "half_io", "flag_set"), [
    ("10.9.0", True, False, True),  # TensorRT 10: the fp32 ONNX with the FP16 builder flag
    ("11.0.0", False, True, False),  # TensorRT 11: strongly typed, from the fp16 ONNX
])
def test_fp16_plans_for_tensorrt_10_and_11(monkeypatch, tmp_path, card, version, fp16_flag, half_io, flag_set):
    pytest.importorskip("onnx")
    monkeypatch.setenv("STREAMSR_CACHE", str(tmp_path / "cache"))
    fakes = fake_gpu.install(monkeypatch, version=version, fp16_flag=fp16_flag)
    from streamsr.backends.tensorrt_backend import ensure_plan

    profile = ShapeProfile.for_stream(48, 64, 2)
    plan = ensure_plan(card, profile, "fp16")
    (build,) = fakes.trt.builds
    assert (build["half"], build["fp16_flag"], build["flags"]) == (half_io, flag_set, 0)
    assert build["profile"] == [(1, 1, 48, 64), (2, 1, 48, 64), (2, 1, 48, 64)]
    assert ensure_plan(card, profile, "fp16") == plan and len(fakes.trt.builds) == 1  # cached
