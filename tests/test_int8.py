"""int8: the quantiser's file runs on both CPU engines near fp32, and ``auto`` follows the documented rule."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from streamsr.backends import create_backend
from streamsr.backends.precision import auto_precision, has_native_bf16, has_vnni, int8_acceptable
from streamsr.errors import ConfigError
from streamsr.types import ModelCard
from tests.test_backends import HAVE, lr_batch, torch_card  # noqa: F401  (torch_card is a fixture)

ZEN4 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})
ZEN3 = frozenset({"avx2", "fma"})
ALDER_LAKE = frozenset({"avx2", "avx_vnni"})


def _card(**kw: object) -> ModelCard:
    base = ModelCard(name="m_x2", arch="espcn", scale=2, colour="y", params=1, macs_per_pixel=1, onnx="m.onnx")
    return dataclasses.replace(base, **kw)


def test_auto_rule_from_cpu_flags() -> None:
    good = _card(onnx_int8="m.int8.onnx", int8_psnr_loss_db=0.05, int8_tolerance_db=0.1)
    lossy = _card(onnx_int8="m.int8.onnx", int8_psnr_loss_db=0.25, int8_tolerance_db=0.1)
    assert has_native_bf16(ZEN4) and has_vnni(ZEN4) and not has_vnni(ZEN3) and has_vnni(ALDER_LAKE)
    assert auto_precision("openvino", good, "fp32", ZEN4) == "bf16"  # native bf16 first
    assert auto_precision("onnxruntime", good, "fp32", ZEN4) == "int8"  # no bf16 in onnxruntime here
    assert auto_precision("openvino", good, "fp32", ALDER_LAKE) == "int8"
    assert auto_precision("openvino", lossy, "fp32", ALDER_LAKE) == "fp32"  # loss above tolerance
    assert auto_precision("openvino", _card(), "fp32", ALDER_LAKE) == "fp32"  # no int8 file
    assert auto_precision("onnxruntime", good, "fp32", ZEN3) == "fp32"  # no VNNI
    assert auto_precision("torch", good, "fp32", ZEN4) == "fp32"
    assert auto_precision("cuda", good, "fp16", ZEN4) == "fp16"  # GPU engines keep their default
    assert int8_acceptable(good) and not int8_acceptable(lossy) and not int8_acceptable(_card())


@pytest.fixture(scope="module")
def int8_card(torch_card: ModelCard, tmp_path_factory: pytest.TempPathFactory) -> ModelCard:  # noqa: F811
    from train.quantize import float_convs, quantize_onnx

    folder = Path(torch_card.path).parent
    patches = [lr_batch(1, 32, 32, seed=i)[None].astype(np.float32) / 255.0 for i in range(8)]  # (1, 1, 32, 32)
    fp32 = folder / torch_card.onnx
    int8 = folder / "espcn_small_x2.int8.onnx"
    quantize_onnx(fp32, int8, patches, float_convs(fp32))
    return dataclasses.replace(torch_card, onnx_int8=int8.name)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_int8_file_runs_near_fp32(int8_card: ModelCard, engine: str) -> None:
    if not HAVE[engine]:
        pytest.skip(f"{engine} is not installed")
    batch = lr_batch(2, 37, 53, seed=3)
    with create_backend(engine, int8_card, threads=1, precision="fp32") as b:
        ref = b.run(batch).astype(int)
    with create_backend(engine, int8_card, threads=1, precision="int8") as b:
        out = b.run(batch).astype(int)
    assert out.shape == ref.shape
    diff = np.abs(out - ref)
    assert diff.mean() < 2.0 and diff.max() <= 16, (diff.mean(), diff.max())
    assert diff.mean() > 0  # it is another computation, not the fp32 file again


def test_only_the_inner_convolutions_are_quantised(tmp_path: Path) -> None:
    """The global residual's Add and the pixel shuffle stay float: a uint8 round of the output
    image costs more PSNR than every inner conv together (repsr x2 Set5: 0.24 dB -> 0.16)."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    from streamsr.models import build_model
    from train.export import export_onnx
    from train.quantize import float_convs, quantize_onnx

    torch.manual_seed(0)
    fp32, int8 = tmp_path / "r.onnx", tmp_path / "r.int8.onnx"
    export_onnx(build_model("repsr", 2, features=8, blocks=2, expansion=0, deploy=True), 1, fp32)
    patches = [lr_batch(1, 32, 32, seed=i)[None].astype(np.float32) / 255.0 for i in range(4)]
    quantize_onnx(fp32, int8, patches, float_convs(fp32))
    graph = onnx.load(str(int8)).graph
    dequantized = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    fed = {n.op_type for n in graph.node if n.op_type != "QuantizeLinear" and dequantized & set(n.input)}
    assert "Conv" in fed and not fed & {"Add", "DepthToSpace"}, fed  # activations between convs may be fed


def test_the_conv_that_feeds_the_last_stays_float_in_deeper_networks() -> None:
    from train.quantize import float_conv_indices

    assert float_conv_indices(3) == {0, 2}  # ESPCN: only its middle conv is quantised
    assert float_conv_indices(9) == {0, 7, 8}  # RepSR x2: first, last, and the one feeding the last
    assert float_conv_indices(1) == {0}


def test_the_calibration_percentile_is_the_one_nearest_fp32_on_held_out_images(
        torch_card: ModelCard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A 50th-percentile range clips half of every activation: the choice must fall on 99.999."""
    import train.quantize as quantize
    from streamsr.evaluate import onnx_upscaler

    files = sorted(_training_images(tmp_path / "train", count=4).glob("*.png"))
    held_out = quantize.held_out_images(files[:2], 2)
    patches = quantize.calibration_patches(files[2:], 2, count=8, size=32)
    fp32 = Path(torch_card.path).parent / torch_card.onnx
    monkeypatch.setattr(quantize, "PERCENTILES", (50.0, 99.999))
    method = quantize.quantize_best(torch_card, fp32, tmp_path / "m.int8.onnx", patches, held_out)
    assert "percentile 99.999 " in method, method
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.int8.onnx", "train"]  # no candidate left behind

    clipped = tmp_path / "clipped.onnx"
    quantize.quantize_onnx(fp32, clipped, patches, quantize.float_convs(fp32), 50.0)
    run = {name: onnx_upscaler(dataclasses.replace(torch_card, onnx=str(path)), 1)
           for name, path in {"fp32": fp32, "kept": tmp_path / "m.int8.onnx", "clipped": clipped}.items()}
    error = {name: np.mean([np.mean((up(lr) - run["fp32"](lr)) ** 2) for lr in held_out]) for name, up in run.items()}
    assert error["kept"] < error["clipped"], error


def test_int8_without_a_file_is_one_clear_error(torch_card: ModelCard) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="int8"):
        create_backend("onnxruntime", torch_card, threads=1, precision="int8")


def test_qat_simulates_the_int8_files_rounding_and_hands_back_plain_weights() -> None:
    import torch

    from streamsr.models import build_model
    from train.qat import plain_state, simulate_int8

    torch.manual_seed(0)
    model = build_model("espcn", 2, features=(8, 8)).eval()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        exact = model(x)
    inner = simulate_int8(model)
    assert len(inner) == 1 and inner[0] is model.body[2]  # the first and last convs stay float
    model.train()
    with torch.no_grad():
        model(x)  # the observers see a batch
    model.eval()
    with torch.no_grad():
        rounded = model(x)
    diff = (rounded - exact).abs()
    assert 0 < diff.max().item() < 0.05  # rounded, but the same picture
    state = plain_state(model)
    assert set(state) == set(reference)  # no simulation left: it loads into a plain model
    plain = build_model("espcn", 2, features=(8, 8))
    plain.load_state_dict(state)
    assert torch.equal(plain.body[2].weight, reference["body.2.weight"])  # no step taken: unchanged


def _training_images(folder: Path, count: int = 3) -> Path:
    import cv2

    from streamsr.synthetic import scene_frames

    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(scene_frames(160, 128, count, seed=3)):
        cv2.imwrite(str(folder / f"img{i}.png"), frame)
    return folder


def test_qat_learns_to_reproduce_the_cards_own_model(torch_card: ModelCard, tmp_path: Path) -> None:  # noqa: F811
    """QAT distils the card's fp32 model: the random-weight ESPCN stays what it is (a fine-tune
    towards the HR patches would turn it into an upscaler), only made robust to the rounding."""
    import torch

    from train.measure import load_card_model
    from train.qat import fine_tune, training_sampler

    sampler = training_sampler(torch_card, sorted((_training_images(tmp_path / "train")).glob("*.png")))
    assert sampler.degradation is None  # the card says nothing: bicubic, as its training was
    tuned = load_card_model(torch_card)
    tuned.load_state_dict(fine_tune(torch_card, sampler, steps=40, lr=1e-3))
    original = load_card_model(torch_card).eval()
    x = torch.from_numpy(sampler.sample(8, np.random.default_rng(5))[0])
    with torch.no_grad():
        drift = (tuned.eval()(x) - original(x)).abs().mean().item()
    assert drift < 0.01, drift


def test_qat_trains_on_the_degradation_of_the_cards_config(torch_card: ModelCard, tmp_path: Path,  # noqa: F811
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from streamsr.hashing import file_sha256
    from train.qat import main, training_sampler

    images = _training_images(tmp_path / "train")
    files = sorted(images.glob("*.png"))
    config = tmp_path / "cctv_small_x2.yaml"
    config.write_text("scale: 2\nmodel: {name: espcn, kwargs: {features: [12, 8]}}\ndegradation: cctv\n"
                      "cctv: {blur_prob: 0.0, noise_prob: 0.0, jpeg_prob: 1.0, jpeg_quality: [10, 10]}\n")
    card = dataclasses.replace(torch_card, training={"degradation": "cctv", "config": str(config),
                                                     "config_sha256": file_sha256(config)})
    sampler = training_sampler(card, files)
    assert sampler.degradation is not None and sampler.degradation.cfg.jpeg_quality == (10, 10)
    degraded, _ = sampler.sample(4, np.random.default_rng(0))
    clean, _ = training_sampler(torch_card, files).sample(4, np.random.default_rng(0))
    assert np.abs(degraded - clean).mean() > 0.002  # same patches, JPEG quality 10 on top

    for name in (torch_card.onnx, torch_card.torch_weights):  # a config changed since: one line, nothing written
        shutil.copy(Path(torch_card.path).parent / name, tmp_path / name)
    card_path = tmp_path / "cctv_small_x2.json"
    card.save(card_path)
    config.write_text(config.read_text().replace("[10, 10]", "[20, 20]"))
    before = card_path.read_bytes()
    rc = main([str(card_path), "--calib", str(images), "--eval", str(images), "--steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "has changed since" in err[0], err
    assert card_path.read_bytes() == before and not list(tmp_path.glob("*.int8.onnx"))


def test_qat_trains_against_the_int8_files_own_rounding(tmp_path: Path) -> None:
    """With the int8 file's activation ranges fixed, the simulation computes what the file computes."""
    torch = pytest.importorskip("torch")
    from streamsr.evaluate import onnx_upscaler
    from streamsr.models import build_model
    from train.export import export_onnx
    from train.qat import quantised_conv_ranges, ranges_by_name, simulate_int8
    from train.quantize import calibration_patches, float_convs, quantize_onnx

    torch.manual_seed(0)
    kwargs = {"features": 8, "blocks": 3, "expansion": 0, "deploy": True}
    model = build_model("repsr", 2, **kwargs).eval()
    fp32, int8 = tmp_path / "r.onnx", tmp_path / "r.int8.onnx"
    export_onnx(model, 1, fp32)
    files = sorted(_training_images(tmp_path / "train", count=3).glob("*.png"))
    quantize_onnx(fp32, int8, calibration_patches(files, 2, count=8, size=32), float_convs(fp32))
    card = ModelCard(name="r_x2", arch="repsr", scale=2, colour="y", params=1, macs_per_pixel=1, onnx=str(int8))
    lr = calibration_patches(files, 2, count=1, size=40, seed=9)[0]
    deployed = onnx_upscaler(card, 1)(lr[0, 0])

    def simulated(ranges) -> np.ndarray:
        sim = build_model("repsr", 2, **kwargs)
        sim.load_state_dict(model.state_dict())
        simulate_int8(sim, ranges)
        with torch.no_grad():
            sim.train()(torch.from_numpy(lr))  # observers (where free) see the input
            return sim.eval()(torch.from_numpy(lr))[0, 0].numpy()

    ranges = quantised_conv_ranges(fp32, int8)
    fixed = np.abs(simulated(ranges) - deployed).mean()
    free = np.abs(simulated(None) - deployed).mean()
    assert fixed < 0.25 * free, (fixed, free)

    # and the fine-tuned weights are quantised at those very ranges, whatever the calibration says
    again = tmp_path / "again.int8.onnx"
    other_patches = [np.clip(p * 0.5, 0, 1) for p in calibration_patches(files, 2, count=8, size=32, seed=4)]
    quantize_onnx(fp32, again, other_patches, float_convs(fp32), ranges=ranges_by_name(fp32, ranges))
    assert quantised_conv_ranges(fp32, again) == ranges


def _unequal_espcn(narrow: float = 0.03):
    """A random ESPCN x2 whose middle conv makes half its output channels ``narrow`` times smaller,
    the last conv reading them ``1 / narrow`` times louder (tanh is near linear there)."""
    import torch

    from streamsr.models import build_model

    torch.manual_seed(1)
    model = build_model("espcn", 2, features=[12, 8]).eval()
    with torch.no_grad():
        model.body[2].weight[:4] *= narrow
        model.body[2].bias[:4] *= narrow
        model.body[4].weight[:, :4] /= narrow
        model.body[-1].bias += 0.5
    return model


def _espcn_with_unequal_channels(path: Path) -> Path:
    from train.export import export_onnx

    export_onnx(_unequal_espcn(), 1, path)
    return path


def test_qat_simulates_the_equalised_files_rounding(tmp_path: Path) -> None:
    """In the equalised layout the simulation rounds what that file rounds (inputs divided by
    their gains, outputs centred and scaled), while the weights trained stay the plain ones."""
    torch = pytest.importorskip("torch")
    import onnxruntime as ort

    from train.export import export_onnx
    from train.qat import quantised_conv_ranges, simulate_int8
    from train.quantize import float_convs, layouts_of, quantised_convs, quantize_onnx

    model = _unequal_espcn()
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m.eq.int8.onnx"
    export_onnx(model, 1, fp32)
    patches = [lr_batch(1, 32, 32, seed=i)[None].astype(np.float32) / 255.0 for i in range(6)]
    (layout,) = layouts_of(fp32, patches, tmp_path, ("equalised",))
    quantize_onnx(layout.source, int8, patches, float_convs(fp32), limits=layout.limits)
    x = lr_batch(1, 29, 41, seed=9)[:, None].astype(np.float32) / 255.0
    out = {p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"lr": x})[0] for p in (fp32, int8)}

    simulated = _unequal_espcn()
    simulate_int8(simulated, quantised_conv_ranges(layout.source, int8),
                  [layout.equalised[c] for c in quantised_convs(fp32)])
    with torch.no_grad():
        sim = simulated.eval()(torch.from_numpy(x)).numpy()
    rounding = np.abs(out[int8] - out[fp32]).mean()
    assert rounding > 0 and np.abs(sim - out[int8]).mean() < 0.25 * rounding


def test_an_equalised_file_computes_what_the_original_does_with_equal_channel_ranges(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    from train.equalise import channel_ranges, equalise_file
    from train.quantize import quantised_convs

    fp32 = _espcn_with_unequal_channels(tmp_path / "m.onnx")
    patches = [lr_batch(1, 32, 32, seed=i)[None].astype(np.float32) / 255.0 for i in range(6)]
    equalised = tmp_path / "m.eq.onnx"
    equalise_file(fp32, equalised, patches, quantised_convs(fp32))

    import onnxruntime as ort
    run = {p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32, equalised)}
    x = lr_batch(2, 29, 41, seed=9)[:, None].astype(np.float32) / 255.0
    assert np.abs(run[fp32].run(None, {"lr": x})[0] - run[equalised].run(None, {"lr": x})[0]).max() < 1e-5

    conv = next(n for n in onnx.load(str(equalised)).graph.node if n.op_type == "Conv" and n.input[0].endswith(".equalised"))
    before = channel_ranges(onnx.load(str(fp32)), ["/body/body.2/Conv_output_0"], patches)["/body/body.2/Conv_output_0"]
    assert (before[1] - before[0]).min() < 0.1 * (before[1] - before[0]).max()  # unequal to begin with
    ranges = channel_ranges(onnx.load(str(equalised)), [conv.input[0], conv.output[0]], patches)
    low, high = ranges[conv.output[0]]
    np.testing.assert_allclose(high - low, (high - low).max(), rtol=1e-3)  # one width, centred on zero
    np.testing.assert_allclose(high + low, 0, atol=1e-3 * (high - low).max())
    low, high = ranges[conv.input[0]]
    np.testing.assert_allclose(np.maximum(-low, high), np.maximum(-low, high).max(), rtol=1e-3)


def test_the_quantiser_equalises_unequal_channels_and_lands_nearer_fp32(torch_card: ModelCard, tmp_path: Path) -> None:  # noqa: F811
    import train.quantize as quantize

    files = sorted(_training_images(tmp_path / "train", count=4).glob("*.png"))
    held_out = quantize.held_out_images(files[:2], 2)
    patches = quantize.calibration_patches(files[2:], 2, count=8, size=32)
    fp32 = _espcn_with_unequal_channels(tmp_path / "m.onnx")
    card = dataclasses.replace(torch_card, onnx=str(fp32))
    method = quantize.quantize_best(card, fp32, tmp_path / "best.int8.onnx", patches, held_out)
    assert "equalised channels" in method, method
    quantize.quantize_best(card, fp32, tmp_path / "plain.int8.onnx", patches, held_out, layouts=("plain",))
    reference = quantize.run_on(card, fp32, held_out)
    error = {name: quantize.mean_squared_error(quantize.run_on(card, tmp_path / f"{name}.int8.onnx", held_out), reference)
             for name in ("best", "plain")}
    assert error["best"] < 0.5 * error["plain"], error


def _espcn_loud(path: Path, activation: str) -> Path:
    """A random ESPCN x2 whose middle conv's outputs reach far past where a tanh saturates."""
    import torch

    from streamsr.models import build_model
    from train.export import export_onnx

    torch.manual_seed(2)
    model = build_model("espcn", 2, features=[12, 8], activation=activation).eval()
    with torch.no_grad():
        model.body[2].weight *= 20
    export_onnx(model, 1, path)
    return path


def test_a_conv_that_only_feeds_a_tanh_is_quantised_over_the_tanh_range(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from train.equalise import equalise_file
    from train.quantize import TANH_RANGE, activation_ranges, float_convs, quantised_convs, quantize_onnx, tanh_limits

    patches = [lr_batch(1, 32, 32, seed=i)[None].astype(np.float32) / 255.0 for i in range(6)]
    fp32 = _espcn_loud(tmp_path / "m.onnx", "tanh")
    middle = "/body/body.2/Conv_output_0"
    assert tanh_limits(fp32) == {middle: (-TANH_RANGE, TANH_RANGE)}
    assert tanh_limits(_espcn_loud(tmp_path / "relu.onnx", "relu")) == {}

    def span(int8: Path, tensor: str) -> float:
        scale, _zero = activation_ranges(int8)[tensor]
        return 255 * scale

    calibrated, limited = tmp_path / "calibrated.int8.onnx", tmp_path / "limited.int8.onnx"
    quantize_onnx(fp32, calibrated, patches, float_convs(fp32))
    quantize_onnx(fp32, limited, patches, float_convs(fp32), limits=tanh_limits(fp32))
    assert span(calibrated, middle) > 4 * TANH_RANGE  # the loud outputs stretch the calibrated range
    assert span(limited, middle) == pytest.approx(2 * TANH_RANGE, rel=0.02)

    # equalised, each channel's range is cut to the tanh's before it is equalised
    equalised = tmp_path / "m.eq.onnx"
    bounds = equalise_file(fp32, equalised, patches, quantised_convs(fp32), tanh_limits(fp32))
    ((tensor, (low, high)),) = bounds.items()
    assert tensor == middle + ".equalised" and low == -high and 0 < high <= TANH_RANGE
    quantize_onnx(equalised, limited, patches, float_convs(fp32), limits=bounds)
    assert span(limited, tensor) == pytest.approx(2 * high, rel=0.02)


def test_the_slower_equalised_layout_must_be_clearly_nearer_fp32_to_be_kept() -> None:
    from train.quantize import EQUALISED_MARGIN_DB, nearest

    def mse(db: float) -> float:
        return 10 ** (-db / 10)

    close = EQUALISED_MARGIN_DB / 2
    assert nearest({"a": ("plain", mse(53.0)), "b": ("equalised", mse(53.0 + close))}) == "a"
    assert nearest({"a": ("plain", mse(53.0)), "b": ("equalised", mse(54.0 + EQUALISED_MARGIN_DB))}) == "b"
    assert nearest({"a": ("plain", mse(53.0)), "b": ("plain", mse(53.1)), "c": ("equalised", mse(50))}) == "b"
    assert nearest({"c": ("equalised", mse(50)), "d": ("equalised", mse(51))}) == "d"  # no plain one to prefer


def test_each_layout_starts_from_its_own_nearest_file() -> None:
    from train.quantize import Candidate, Layout, best_per_layout

    plain, equalised = Layout("plain", Path("p.onnx"), {}), Layout("equalised", Path("e.onnx"), {})
    candidates = [Candidate(plain, 99.99, Path("p1"), 3.0), Candidate(equalised, 99.99, Path("e1"), 1.0),
                  Candidate(plain, 99.995, Path("p2"), 2.0), Candidate(equalised, 99.995, Path("e2"), 4.0)]
    best = best_per_layout(candidates)
    assert list(best) == ["plain", "equalised"]
    assert best["plain"].int8 == Path("p2") and best["equalised"].int8 == Path("e1")
