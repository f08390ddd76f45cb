"""SRCNN: Dong et al., "Image Super-Resolution Using Deep Convolutional Networks", 2014/2016.

The 9-5-5 network (64 and 32 filters, ReLU) works on the bicubic-upscaled image. To keep the
LR-in / HR-out contract of every other streamsr model, the module takes the LR plane and
upscales it inside (``F.interpolate``, bicubic, ``align_corners=False``: PyTorch's cubic
a = -0.75, no antialiasing, close to but not MATLAB's ``imresize``), then runs the three convs
on the HR grid with 'same' padding (the paper used 'valid' convs and a cropped output).

Cost: ``(81*64 + 25*64*32 + 25*32) * s^2`` MACs per *input* LR pixel (the convs run at HR
resolution); the interpolation itself is not counted. ``residual=True`` (not the paper's)
adds the upscaled input to the output: the same function class, faster to train.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from streamsr.models import register_model


class SRCNN(nn.Module):
    def __init__(
        self,
        scale: int,
        channels: int = 1,
        features: tuple[int, int] | list[int] = (64, 32),
        kernels: tuple[int, int, int] | list[int] = (9, 5, 5),
        residual: bool = False,
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        f1, f2 = features
        k1, k2, k3 = kernels
        self.scale, self.residual = scale, residual
        self.body = nn.Sequential(
            nn.Conv2d(channels, f1, k1, padding=k1 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(f1, f2, k2, padding=k2 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(f2, channels, k3, padding=k3 // 2),
        )

    def forward(self, x: Tensor) -> Tensor:
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        y = self.body(up)
        return up + y if self.residual else y


@register_model("srcnn")
def srcnn(scale: int, **kwargs: object) -> SRCNN:
    return SRCNN(scale, **kwargs)  # type: ignore[arg-type]
