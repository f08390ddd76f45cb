"""SAFMN, the quality tier: shapes on odd sizes, the MACs budget, re-parameterisation, the
pooling against the reference's adaptive pooling, ONNX parity and a short training run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamsr.models import build_model, count_params, macs_per_pixel
from streamsr.models.safmn import SAFM, SAFMN
from train.export import check_onnx, deploy_form, export_onnx

SMALL = {"dim": 8, "blocks": 2, "ffn_hidden": 16}


def _perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights moved off their init (zero biases, unit norms) so that every branch matters."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_default_model_shapes_on_odd_sizes(scale: int) -> None:
    model = build_model("safmn", scale).eval()
    with torch.no_grad():
        for h, w in [(37, 53), (50, 31), (5, 3)]:
            assert model(torch.rand(2, 1, h, w)).shape == (2, 1, h * scale, w * scale)
    rgb = build_model("safmn", scale, channels=3, **SMALL).eval()
    with torch.no_grad():
        assert rgb(torch.rand(1, 3, 9, 13)).shape == (1, 3, 9 * scale, 13 * scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_deployed_macs_within_ten_espcn(scale: int) -> None:
    espcn = macs_per_pixel(build_model("espcn", scale), scale)
    deployed = build_model("safmn", scale, deploy=True)
    macs = macs_per_pixel(deployed, scale)
    assert macs <= 10 * espcn
    if scale == 2:
        assert macs > 9.5 * espcn  # close to the budget, not far below it
    # the docstring's count: dense convs per pixel, depthwise convs at their pooled size (8x8 input)
    c, hidden, blocks, chunk = 36, 68, 8, 9
    dense = 9 * c + 9 * c * scale**2 + blocks * (9 * hidden * c + hidden * c + c * c)
    pooled = blocks * 9 * chunk * (64 + 16 + 4 + 1)
    assert macs == (64 * dense + pooled) // 64
    # the training form's 1x1 branches cost extra only while training
    assert macs_per_pixel(build_model("safmn", scale), scale) > macs
    assert macs_per_pixel(build_model("safmn", scale, rep=False), scale) == macs
    assert 200_000 < count_params(deployed) < 230_000


def test_reparameterize_is_exact_and_rebuilds_from_kwargs() -> None:
    model = _perturbed(build_model("safmn", 2, expansion=2, **SMALL).double())
    x = torch.rand(2, 1, 19, 26, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        deployed, kwargs = deploy_form(model, {"expansion": 2, **SMALL})
        assert kwargs["deploy"] is True and deployed.deployed
        assert torch.allclose(deployed(x), ref, atol=1e-10)
    rebuilt = build_model("safmn", 2, **kwargs).double().eval()
    rebuilt.load_state_dict(deployed.state_dict())  # strict: same structure
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), ref, atol=1e-10)
    # rep=False trains the deployed structure directly, under the same names
    plain = build_model("safmn", 2, rep=False, **SMALL)
    assert plain.state_dict().keys() == rebuilt.state_dict().keys()


def _reference_safm(mod: SAFM, x: torch.Tensor) -> torch.Tensor:
    """The reference's SAFM: adaptive max pooling to (h // 2^i, w // 2^i), resized back to (h, w)."""
    h, w = x.shape[-2:]
    parts = []
    for i, (chunk, conv) in enumerate(zip(x.chunk(mod.levels, dim=1), mod.convs)):
        if i == 0:
            parts.append(conv(chunk))
        else:
            pooled = F.adaptive_max_pool2d(chunk, (h // 2**i, w // 2**i))
            parts.append(F.interpolate(conv(pooled), size=(h, w), mode="nearest"))
    return mod.act(mod.aggr(torch.cat(parts, dim=1))) * x


def test_pooling_matches_the_reference_on_multiples_of_eight() -> None:
    safm = _perturbed(SAFM(16, levels=4))
    with torch.no_grad():
        x = torch.randn(2, 16, 64, 40)
        assert torch.allclose(safm(x), _reference_safm(safm, x), atol=1e-6)
        # any size: every pixel is modulated by the max of the 8x8 cell (ceil grid) it lies in
        x = torch.randn(1, 16, 21, 11)
        s = F.max_pool2d(x[:, 12:], 8, 8, ceil_mode=True)
        assert s.shape[-2:] == (3, 2)
        assert torch.equal(s[..., 2, 1], x[:, 12:, 16:, 8:].amax(dim=(-2, -1)))


def test_coarse_levels_reach_beyond_the_dense_receptive_field() -> None:
    """One block: the dense path reaches 4 LR pixels; the 1/8 level the next 8x8 cells."""
    model = _perturbed(build_model("safmn", 2, dim=16, blocks=1, ffn_hidden=16, rep=False))
    x = torch.full((1, 1, 32, 32), 0.5)
    x2 = x.clone()
    x2[..., :8, :8] = torch.rand(8, 8)  # LR pixels 0..7: the head conv spreads them to 0..8
    with torch.no_grad():
        diff = (model(x2) - model(x)).abs()[0, 0]
    # dense path: 8 + 3 = 11 at most; rows 16..23 are reached only through cell 1 -> cell 2 of the 1/8 level
    assert diff[2 * 16 : 2 * 24, : 2 * 8].max() > 1e-6
    # cell 2 of the 1/8 level is the farthest, 23, then the CCM and the tail: 25
    assert diff[2 * 26 :, :].max() < 1e-7 and diff[:, 2 * 26 :].max() < 1e-7


def test_onnx_matches_torch_on_odd_sizes(tmp_path: Path) -> None:
    import onnxruntime as ort

    model, _ = deploy_form(_perturbed(build_model("safmn", 2, dim=16, blocks=2, ffn_hidden=24)), {})
    path = tmp_path / "safmn.onnx"
    export_onnx(model, 1, path)
    assert check_onnx(model, 1, path) < 1e-4  # (1, 1, 37, 53) and (2, 1, 24, 17)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 50, 31), (1, 1, 5, 7), (1, 1, 64, 64)]:
        x = rng.random(shape, dtype=np.float32)
        got = sess.run(["sr"], {"lr": x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert got.shape == ref.shape == (1, 1, 2 * shape[2], 2 * shape[3])
        assert np.abs(got - ref).max() < 1e-4


def test_a_few_steps_reduce_the_loss_and_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model: SAFMN = build_model("safmn", 2, **SMALL)
    hr = F.interpolate(torch.rand(8, 1, 6, 6), size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    lr = F.avg_pool2d(hr, 2)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for step in range(30):
        loss = F.l1_loss(model(lr), hr)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not dead, f"no gradient reaches {dead}"
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
