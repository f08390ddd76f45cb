"""SAFMN: Sun et al., "Spatially-Adaptive Feature Modulation for Efficient Image Super-Resolution",
ICCV 2023 (reference code: github.com/sunny2109/SAFMN). streamsr's quality tier (issue 10).

    conv3x3(ch -> C) = f -> [block] x blocks -> + f -> conv3x3(C -> ch s^2)
    + the input repeated s^2 times (a nearest-neighbour global residual, no MACs) -> PixelShuffle(s)

    block:  x = x + SAFM(LN(x));  x = x + CCM(LN(x))

* LN: layer norm over the channels of each pixel (eps 1e-6, as the reference).
* SAFM (spatially-adaptive feature modulation): the normalised features ``u`` are split into
  ``levels`` chunks of ``C / levels`` channels. Chunk 0 gets a depthwise 3x3 conv at full
  resolution; chunk ``i > 0`` is max-pooled by ``2^i``, gets a depthwise 3x3 conv there and is
  upsampled back (nearest). The chunks are concatenated, mixed by a 1x1 conv, and the GELU of
  that modulates ``u``: ``GELU(conv1x1(cat)) * u``.
* CCM (convolutional channel mixer): ``conv3x3(C -> hidden) -> GELU -> conv1x1(hidden -> C)``.

What differs from the reference, and why:

* Y channel by default (``channels=1``), and the nearest-neighbour global residual of RepSR and
  WResNet (the reference has only the feature skip ``+ f``).
* Pooling. The reference pools with ``adaptive_max_pool2d`` to ``(h // 2^i, w // 2^i)`` and
  resizes back to ``(h, w)``; the pooled size depends on the input, which the ONNX exporter
  cannot write with dynamic height and width. Here it is ``max_pool2d(2^i, stride 2^i,
  ceil_mode=True)`` (the last row and column of cells take what is left), an exact ``2^i``
  nearest upsampling and a crop to ``(h, w)``: every pixel is modulated by the cell it lies
  in. Both are the same function when ``h`` and ``w`` are multiples of ``2^(levels-1)`` (8),
  as training patches are; on other sizes this one keeps every pixel in exactly one cell.
* Width: the reference x2 model (C = 36, 8 blocks, hidden = 2C = 72) counts 220,208 MACs per
  LR pixel here on Y (10.4x ESPCN x2); ``hidden = 68`` brings it to 208,688 (9.85x) and keeps
  depth and width. Every hidden channel of the 8 blocks costs 2,880 MACs. At x3 and x4 the
  reference's 72 fits (221,828 = 9.8x ESPCN x3; 224,096 = 9.1x ESPCN x4).
* Training form (``rep=True``): the dense 3x3 convs (head, each CCM's first conv, tail) are
  :class:`~streamsr.models.repsr.RepConv`, a 3x3 and a 1x1 branch (and, with ``expansion``,
  SESR's expanded one) summed. ``reparameterize()`` collapses them into plain convs, exactly:
  the deployed network is the reference structure with the same MACs. ``rep=False`` trains
  that structure directly (the state_dict names are the same as the deployed form's).
  The depthwise convs stay plain: they are 0.4 % of the MACs.
* The reference trains with L1 plus 0.05 x an FFT loss; ``train/`` has L1 and MSE.

Receptive field: the dense path (head, depthwise 3x3 of level 0, CCM, tail) reaches 18 LR
pixels at 8 blocks; the 1/8 level reaches up to 15 pixels per block, so a pixel can see the
whole of a typical tile. Tiled inference (frames over a backend's ``max_pixels``, with
``streamsr.backends.base.TILE_OVERLAP`` of context) is therefore close to, not exactly, the
whole-frame result, and the cell grid follows each tile's origin.

MACs per LR pixel (:func:`streamsr.models.macs_per_pixel`, deployed form, ``ch = 1``):
``9 ch C + 9 C ch s^2 + blocks (9 hidden C + hidden C + C^2 + 9 (C / levels) (1 + 1/4 + 1/16 +
1/64))`` for sizes that are multiples of 8. The count is of convolutions only; the layer norms,
GELUs, pooling, upsampling, the modulation product and the residual sums are elementwise, about
800 operations per pixel and block against 25,900 MACs (~3 %), and are left out.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamsr.models import register_model
from streamsr.models.repsr import RepConv


class ChannelNorm(nn.Module):
    """Layer norm over the channels of every pixel of an NCHW tensor (exports as LayerNormalization)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation: multi-scale depthwise convs gate the features."""

    def __init__(self, dim: int, levels: int = 4) -> None:
        super().__init__()
        if levels < 1 or dim % levels:
            raise ValueError(f"dim ({dim}) must be a multiple of levels ({levels})")
        self.levels = levels
        chunk = dim // levels
        self.convs = nn.ModuleList(nn.Conv2d(chunk, chunk, 3, padding=1, groups=chunk) for _ in range(levels))
        self.aggr = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        parts = []
        for i, (chunk, conv) in enumerate(zip(x.chunk(self.levels, dim=1), self.convs)):
            if i == 0:
                parts.append(conv(chunk))
                continue
            k = 2**i
            s = conv(F.max_pool2d(chunk, k, k, ceil_mode=True))
            parts.append(F.interpolate(s, scale_factor=float(k), mode="nearest")[..., :h, :w])
        return self.act(self.aggr(torch.cat(parts, dim=1))) * x


class RepArgs:
    """How the dense 3x3 convs are built: re-parameterisable branches, or plain (deployed)."""

    def __init__(self, rep: bool, hidden: int, deploy: bool) -> None:
        self.plain = deploy or not rep
        self.hidden = 0 if self.plain else hidden

    def conv(self, c_in: int, c_out: int) -> RepConv:
        return RepConv(c_in, c_out, self.hidden, deploy=self.plain)


class CCM(nn.Module):
    """Convolutional channel mixer: conv3x3(C -> hidden) -> GELU -> conv1x1(hidden -> C)."""

    def __init__(self, dim: int, hidden: int, rep: RepArgs) -> None:
        super().__init__()
        self.expand = rep.conv(dim, hidden)
        self.act = nn.GELU()
        self.squeeze = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.squeeze(self.act(self.expand(x)))


class Block(nn.Module):
    def __init__(self, dim: int, hidden: int, levels: int, rep: RepArgs) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(dim)
        self.safm = SAFM(dim, levels)
        self.norm2 = ChannelNorm(dim)
        self.ccm = CCM(dim, hidden, rep)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.safm(self.norm1(x))
        return x + self.ccm(self.norm2(x))


class SAFMN(nn.Module):
    def __init__(
        self,
        scale: int,
        channels: int = 1,
        dim: int = 36,
        blocks: int = 8,
        ffn_hidden: int = 68,
        levels: int = 4,
        rep: bool = True,
        expansion: int = 0,
        global_residual: bool = True,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        if scale < 1 or dim < 1 or blocks < 0 or ffn_hidden < 1 or expansion < 0:
            raise ValueError("scale, dim and ffn_hidden must be >= 1, blocks and expansion >= 0")
        self.scale, self.channels, self.global_residual = scale, channels, global_residual
        conv = RepArgs(rep, dim * expansion, deploy)
        self.head = conv.conv(channels, dim)
        self.blocks = nn.Sequential(*(Block(dim, ffn_hidden, levels, conv) for _ in range(blocks)))
        self.tail = conv.conv(dim, channels * scale * scale)
        self.shuffle = nn.PixelShuffle(scale)

    @property
    def deployed(self) -> bool:
        return all(m.deploy for m in self.modules() if isinstance(m, RepConv))

    def forward(self, x: Tensor) -> Tensor:
        f = self.head(x)
        y = self.tail(self.blocks(f) + f)
        if self.global_residual:
            y = y + x.repeat_interleave(self.scale * self.scale, dim=1)
        return self.shuffle(y)

    def reparameterize(self) -> SAFMN:
        """Collapse every :class:`RepConv` into one plain conv, in place; returns ``self``."""
        for m in self.modules():
            if isinstance(m, RepConv):
                m.reparameterize()
        return self


@register_model("safmn")
def safmn(scale: int, **kwargs: object) -> SAFMN:
    return SAFMN(scale, **kwargs)  # type: ignore[arg-type]
