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
