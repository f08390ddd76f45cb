"""WResNet: the Weighted ResNet described to us, on the LR grid with a sub-pixel tail.

Seventeen 3x3 convolutions with ReLU:

* layer 1: ``conv(ch -> F)`` + ReLU gives ``h_0``;
* layers 2..16 (``layers - 2`` residual blocks): ``h_i = h_{i-1} + ReLU(conv(h_{i-1}))``, every
  layer residual;
* every block's output reaches the final layer through its own learned scalar weight:
  ``a = sum_i w_i h_i`` (``w_i`` initialised to ``1 / n``);
* layer 17: ``conv(F -> ch s^2)`` on ``a``, plus the input repeated ``s^2`` times (a
  nearest-neighbour global residual, no MACs), then ``PixelShuffle(s)``.

Width is ``features`` (32 or 64). MACs per LR pixel: ``9 (ch F + (layers-2) F^2 + F ch s^2)``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from streamsr.models import register_model


class WResNet(nn.Module):
    def __init__(
        self, scale: int, channels: int = 1, features: int = 64, layers: int = 17, global_residual: bool = True
    ) -> None:
        super().__init__()
        if scale < 1 or layers < 3 or features < 1:
            raise ValueError("scale >= 1, layers >= 3 and features >= 1 are required")
        self.scale, self.channels, self.global_residual = scale, channels, global_residual
        n = layers - 2
        self.head = nn.Conv2d(channels, features, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(features, features, 3, padding=1) for _ in range(n))
        self.weights = nn.Parameter(torch.full((n,), 1.0 / n))
        self.tail = nn.Conv2d(features, channels * scale * scale, 3, padding=1)
        self.act = nn.ReLU()
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.head(x))
        acc = torch.zeros_like(h)
        for i, conv in enumerate(self.blocks):
            h = h + self.act(conv(h))
            acc = acc + self.weights[i] * h
        y = self.tail(acc)
        if self.global_residual:
            y = y + x.repeat_interleave(self.scale * self.scale, dim=1)
        return self.shuffle(y)


@register_model("wresnet")
def wresnet(scale: int, **kwargs: object) -> WResNet:
    return WResNet(scale, **kwargs)  # type: ignore[arg-type]
