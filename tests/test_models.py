from __future__ import annotations

import pytest
import torch

from streamsr.errors import ModelError
from streamsr.models import build_model, count_params, macs_per_pixel, model_names, register_model


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_model_upscales_shape(name: str, scale: int) -> None:
    model = build_model(name, scale).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 7, 11))
    assert out.shape == (2, 1, 7 * scale, 11 * scale)
    assert count_params(model) > 0


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_espcn_macs_match_hand_count(scale: int) -> None:
    model = build_model("espcn", scale)
    assert macs_per_pixel(model, scale) == 25 * 64 + 9 * 64 * 32 + 9 * 32 * scale**2


def test_espcn_params_and_options() -> None:
    m = build_model("espcn", 3)
    assert count_params(m) == (25 * 64 + 64) + (9 * 64 * 32 + 32) + (9 * 32 * 9 + 9)
    relu = build_model("espcn", 2, activation="relu", features=(16, 8))
    assert any(isinstance(x, torch.nn.ReLU) for x in relu.modules())
    assert macs_per_pixel(relu, 2) == 25 * 16 + 9 * 16 * 8 + 9 * 8 * 4


def test_registry_errors() -> None:
    assert "espcn" in model_names()
    with pytest.raises(ModelError, match="known: .*espcn"):
        build_model("nope", 2)
    with pytest.raises(ModelError, match="already registered"):
        register_model("espcn")(lambda scale: torch.nn.Identity())
    with pytest.raises(ModelError, match="bad arguments"):
        build_model("espcn", 2, bogus=1)


ESPCN_X2_MACS = 25 * 64 + 9 * 64 * 32 + 9 * 32 * 4  # 21,184


@pytest.mark.parametrize("scale", [2, 3])
def test_srcnn_shape_and_macs(scale: int) -> None:
    model = build_model("srcnn", scale).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 6, 9))
    assert out.shape == (2, 1, 6 * scale, 9 * scale)
    # the convs run on the HR grid: the count is per LR pixel, so times s^2
    assert macs_per_pixel(model, scale) == (81 * 64 + 25 * 64 * 32 + 25 * 32) * scale**2
    tiny = build_model("srcnn", scale, features=(4, 2), residual=True).eval()
    x = torch.rand(1, 1, 5, 5)
    up = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    with torch.no_grad():
        for p in tiny.parameters():
            p.zero_()
        assert torch.allclose(tiny(x), up)  # residual on the bicubic-like upscale


@pytest.mark.parametrize("scale", [2, 4])
def test_wresnet_shape_macs_and_weights(scale: int) -> None:
    model = build_model("wresnet", scale, features=8).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 17
    assert model.weights.shape == (15,) and model.weights.requires_grad
    with torch.no_grad():
        out = model(torch.rand(2, 1, 5, 7))
    assert out.shape == (2, 1, 5 * scale, 7 * scale)
    assert macs_per_pixel(model, scale) == 9 * (8 + 15 * 64 + 8 * scale**2)
    assert macs_per_pixel(build_model("wresnet", scale, features=64), scale) == 9 * (64 + 15 * 64 * 64 + 64 * scale**2)
    # every block reaches the tail through its own weight: zero them all and only the input remains
    with torch.no_grad():
        model.weights.zero_()
        model.tail.bias.zero_()
        x = torch.rand(1, 1, 4, 4)
        ref = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
        assert torch.allclose(model(x), ref)


def test_edsr_shape_macs_and_channels() -> None:
    model = build_model("edsr", 3, features=8, blocks=2, res_scale=0.1).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 5, 6)).shape == (2, 1, 15, 18)
    assert macs_per_pixel(model, 3) == 9 * (8 + 5 * 64 + 8 * 9)
    rgb = build_model("edsr", 2, channels=3, features=8, blocks=1).eval()
    with torch.no_grad():
        assert rgb(torch.rand(1, 3, 4, 5)).shape == (1, 3, 8, 10)
    assert rgb.body[0].res_scale == 0.1


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_repsr_shape_and_deployed_macs(scale: int) -> None:
    model = build_model("repsr", scale).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 5, 7)).shape == (2, 1, 5 * scale, 7 * scale)
    deployed = build_model("repsr", scale, deploy=True)
    assert macs_per_pixel(deployed, scale) == 9 * (32 + 4 * 32 * 32 + 32 * scale**2)
    espcn = macs_per_pixel(build_model("espcn", scale), scale)
    assert macs_per_pixel(deployed, scale) <= 2 * espcn
    assert macs_per_pixel(model, scale) > 2 * espcn  # the training form is the expensive one
