"""ESPCN: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016.

Three convolutions on the low-resolution image, then a pixel shuffle. With ``channels=1`` it
works on the luma plane (Y of BT.601 YCbCr / 255, NCHW float32 in [0, 1]); the output is not
clamped. 'Same' padding keeps the output exactly ``scale`` times the input.
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from streamsr.models import register_model

Activation = Literal["tanh", "relu"]


class ESPCN(nn.Module):
    def __init__(
        self,
        scale: int,
        channels: int = 1,
        features: tuple[int, int] | list[int] = (64, 32),
        activation: Activation = "tanh",
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        f1, f2 = features
        act = nn.Tanh if activation == "tanh" else nn.ReLU
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(channels, f1, 5, padding=2),
            act(),
            nn.Conv2d(f1, f2, 3, padding=1),
            act(),
            nn.Conv2d(f2, channels * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(self.body(x))


@register_model("espcn")
def espcn(scale: int, **kwargs: object) -> ESPCN:
    return ESPCN(scale, **kwargs)  # type: ignore[arg-type]
