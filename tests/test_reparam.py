"""RepSR: the collapsed (deployed) network computes what the multi-branch one does."""
from __future__ import annotations

import pytest
import torch

from streamsr.models import build_model, macs_per_pixel
from streamsr.models.repsr import RepConv, RepSR


def _randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)


@pytest.mark.parametrize("scale,expansion", [(2, 3), (3, 3), (4, 3), (2, 0)])
def test_collapsed_matches_branches_float64(scale: int, expansion: int) -> None:
    model = build_model("repsr", scale, features=8, blocks=2, expansion=expansion).double().eval()
    _randomise(model, scale)  # non-trivial biases, PReLU slopes and branches
    x = torch.rand(2, 1, 11, 13, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
        model.reparameterize()
        after = model(x)
    assert model.deployed
    assert not any(hasattr(m, "expand") for m in model.modules() if isinstance(m, RepConv))
    assert (before - after).abs().max().item() < 1e-5
    assert before.abs().max().item() > 0.1  # the comparison is not between two near-zero maps


def test_collapsed_matches_float32_default_size_and_rgb() -> None:
    for kwargs in ({}, {"channels": 3, "features": 8, "blocks": 1}):
        model = build_model("repsr", 2, **kwargs).eval()
        _randomise(model, 7)
        x = torch.rand(1, kwargs.get("channels", 1), 16, 16)
        with torch.no_grad():
            before = model(x)
            after = model.reparameterize()(x)
        assert (before - after).abs().max().item() < 1e-4 * max(1.0, before.abs().max().item())


def test_deployed_state_dict_loads_into_deploy_build_and_cost() -> None:
    model = build_model("repsr", 2).eval()
    _randomise(model, 1)
    x = torch.rand(1, 1, 9, 9)
    with torch.no_grad():
        ref = model(x)
        state = model.reparameterize().state_dict()
    rebuilt = build_model("repsr", 2, deploy=True)
    rebuilt.load_state_dict(state)  # strict: same keys and shapes as the runtime's torch backend expects
    with torch.no_grad():
        assert (rebuilt.eval()(x) - ref).abs().max().item() < 1e-4 * max(1.0, ref.abs().max().item())
    assert isinstance(rebuilt, RepSR) and rebuilt.deployed
    espcn = macs_per_pixel(build_model("espcn", 2), 2)
    assert espcn == 21184
    assert macs_per_pixel(rebuilt, 2) == 38304 <= 2 * espcn
    assert macs_per_pixel(model, 2) == macs_per_pixel(rebuilt, 2)  # collapsed in place


def test_reparameterize_is_idempotent_and_identity_branch() -> None:
    conv = RepConv(4, 4, hidden=8).double()
    with torch.no_grad():
        for p in conv.parameters():
            p.zero_()
    x = torch.rand(1, 4, 5, 5, dtype=torch.float64)
    assert torch.equal(conv(x), x)  # all other branches zero: the identity branch alone
    conv.reparameterize()
    conv.reparameterize()
    assert torch.allclose(conv(x), x)
    assert not RepConv(4, 6, hidden=8).identity
