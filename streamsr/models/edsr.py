"""EDSR-style network: Lim et al., "Enhanced Deep Residual Networks for Single Image SR", 2017.

``head conv -> blocks x [conv-ReLU-conv, scaled by res_scale, + skip] -> body conv, + head skip
-> conv(F -> ch s^2) -> PixelShuffle(s)``. No batch norm (EDSR's point); the residual scaling
(0.1 in EDSR's large model) keeps deep, wide stacks stable. ``channels`` is 1 for Y, 3 for RGB.
The tail is one sub-pixel conv for every scale (EDSR stacks two x2 stages for x4).

MACs per LR pixel: ``9 (ch F + (2 blocks + 1) F^2 + F ch s^2)``.
"""
from __future__ import annotations

from torch import Tensor, nn

from streamsr.models import register_model


class ResBlock(nn.Module):
    def __init__(self, features: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(features, features, 3, padding=1)
        )
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    def __init__(
        self, scale: int, channels: int = 1, features: int = 64, blocks: int = 16, res_scale: float = 0.1
    ) -> None:
        super().__init__()
        if scale < 1 or features < 1 or blocks < 0:
            raise ValueError("scale >= 1, features >= 1 and blocks >= 0 are required")
        self.head = nn.Conv2d(channels, features, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(features, res_scale) for _ in range(blocks)])
        self.body_tail = nn.Conv2d(features, features, 3, padding=1)
        self.tail = nn.Conv2d(features, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        h = h + self.body_tail(self.body(h))
        return self.shuffle(self.tail(h))


@register_model("edsr")
def edsr(scale: int, **kwargs: object) -> EDSR:
    return EDSR(scale, **kwargs)  # type: ignore[arg-type]
