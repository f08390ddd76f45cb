"""RepSR: streamsr's efficient model, trained wide and multi-branch, deployed as plain convs.

Structural re-parameterisation (RepVGG, ECBSR, SESR). Every convolution of the deployed
network is a plain 3x3 conv followed by PReLU:

    conv3x3(C_in -> C) -> PReLU -> [conv3x3(C -> C) -> PReLU] x blocks -> conv3x3(C -> s^2 ch)
    + the input repeated s^2 times (a nearest-neighbour global residual, no MACs)
    -> PixelShuffle(s)

While training, each of those 3x3 convs is a :class:`RepConv` with linear branches only:

* ``expand``: 3x3 conv C_in -> hidden (e.g. 4C) followed by a 1x1 conv hidden -> C_out
  (SESR's expanded linear block: more parameters to optimise, the same function class;
  ``expansion=0`` leaves it out, RepVGG style: training then costs about 1.2x the deployed
  net instead of 3.3x with ``expansion=2``, measured on a 2-core CPU),
* ``conv3``: a plain 3x3 conv C_in -> C_out,
* ``conv1``: a 1x1 conv C_in -> C_out,
* identity (when C_in == C_out).

They are all linear, so :meth:`RepConv.reparameterize` sums them into one 3x3 kernel and bias,
exactly (the 1x1 after the padded 3x3 is pointwise, so the zero padding commutes with it).
``RepSR.reparameterize()`` collapses the whole network in place; ``build_model("repsr", s,
deploy=True, ...)`` builds the collapsed structure directly, which is what the runtime's torch
backend does with the exported card (its ``arch_kwargs`` carry ``deploy: true``).

Deployed cost per LR pixel: ``9 (ch C + blocks C^2 + C ch s^2)``. With C = 32, 4 blocks:
38,304 MACs at x2 (1.81x ESPCN's 21,184), 39,744 at x3 (1.76x), 41,760 at x4 (1.69x).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamsr.models import register_model


class RepConv(nn.Module):
    """A 3x3 conv that trains as a sum of linear branches and collapses into one conv."""

    def __init__(self, c_in: int, c_out: int, hidden: int, deploy: bool = False) -> None:
        super().__init__()
        self.c_in, self.c_out, self.hidden = c_in, c_out, hidden
        self.deploy = deploy
        if deploy:
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
            return
        if hidden:
            self.expand = nn.Conv2d(c_in, hidden, 3, padding=1)
            self.squeeze = nn.Conv2d(hidden, c_out, 1)
        self.conv3 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv1 = nn.Conv2d(c_in, c_out, 1)
        self.identity = c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy:
            return self.conv(x)
        y = self.conv3(x) + self.conv1(x)
        if self.hidden:
            y = y + self.squeeze(self.expand(x))
        return y + x if self.identity else y

    @torch.no_grad()
    def fused(self) -> tuple[Tensor, Tensor]:
        """The single 3x3 (weight, bias) equal to the sum of the branches."""
        if self.deploy:
            return self.conv.weight.detach().clone(), self.conv.bias.detach().clone()
        weight = self.conv3.weight + F.pad(self.conv1.weight, (1, 1, 1, 1))
        bias = self.conv3.bias + self.conv1.bias
        if self.hidden:
            w1, b1 = self.expand.weight, self.expand.bias  # (H, Cin, 3, 3), (H,)
            w2, b2 = self.squeeze.weight[:, :, 0, 0], self.squeeze.bias  # (Cout, H), (Cout,)
            weight = weight + torch.einsum("oh,hikl->oikl", w2, w1)
            bias = bias + w2 @ b1 + b2
        if self.identity:
            eye = torch.zeros_like(weight)
            idx = torch.arange(self.c_in)
            eye[idx, idx, 1, 1] = 1.0
            weight = weight + eye
        return weight, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one plain conv, in place."""
        if self.deploy:
            return
        weight, bias = self.fused()
        conv = nn.Conv2d(self.c_in, self.c_out, 3, padding=1).to(weight.device, weight.dtype)
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        for name in ("expand", "squeeze", "conv3", "conv1"):
            if hasattr(self, name):
                delattr(self, name)
        self.conv = conv
        self.deploy = True


class RepSR(nn.Module):
    def __init__(
        self,
        scale: int,
        channels: int = 1,
        features: int = 32,
        blocks: int = 4,
        expansion: int = 4,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        if scale < 1 or features < 1 or blocks < 0 or expansion < 0:
            raise ValueError("scale and features must be >= 1, blocks and expansion >= 0")
        self.scale, self.channels = scale, channels
        hidden = features * expansion
        out_ch = channels * scale * scale
        layers: list[nn.Module] = [RepConv(channels, features, hidden, deploy), nn.PReLU(features)]
        for _ in range(blocks):
            layers += [RepConv(features, features, hidden, deploy), nn.PReLU(features)]
        layers.append(RepConv(features, out_ch, hidden, deploy))
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(scale)

    @property
    def deployed(self) -> bool:
        return all(m.deploy for m in self.modules() if isinstance(m, RepConv))

    def forward(self, x: Tensor) -> Tensor:
        s2 = self.scale * self.scale
        skip = x.repeat_interleave(s2, dim=1) if self.channels > 1 else x.expand(-1, s2, -1, -1)
        return self.shuffle(self.body(x) + skip)

    def reparameterize(self) -> RepSR:
        """Collapse every :class:`RepConv` into one plain conv, in place; returns ``self``."""
        for m in self.modules():
            if isinstance(m, RepConv):
                m.reparameterize()
        return self

    deploy = reparameterize


@register_model("repsr")
def repsr(scale: int, **kwargs: object) -> RepSR:
    return RepSR(scale, **kwargs)  # type: ignore[arg-type]
