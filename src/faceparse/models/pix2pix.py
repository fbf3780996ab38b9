"""Pix2Pix networks: the U-Net generator and the PatchGAN / PixelGAN discriminators.

Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017, as built by
junyanz/pytorch-CycleGAN-and-pix2pix (``models/networks.py``). The paper's RGB→depth translator G and its
discriminator D are these networks (paper §3.2, FACTS §4). State_dict keys and shapes match the reference
(``shared/reference/pix2pix_*.tsv``), so its checkpoints load unchanged.

Value ranges: the generator takes inputs in [-1, 1] (``faceparse.data.normalize.rgb_for_generator``) and
returns depth in [-1, 1] through ``tanh`` (``depth_from_network`` maps it to nearness in [0, 1]). The
discriminators take ``cat([rgb, depth], dim=1)`` in [-1, 1] (4 channels) and return unnormalised logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

_NORMS = ("batch", "instance")
_MIN_DOWNS = 5  # outermost + three fixed-width levels + innermost


def _norm_layer(norm: str) -> tuple[Callable[[int], nn.Module], bool]:
    """Return (norm layer factory, whether convs before it carry a bias), as the reference does.

    Batch norm has its own shift, so convs before it have no bias; instance norm is affine-free, so they do.
    """
    if norm == "batch":
        return nn.BatchNorm2d, False
    if norm == "instance":
        return (lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)), True
    raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(_NORMS)}")


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down-sample, run the inner block, up-sample, and concatenate the skip connection.

    ``self.model`` is an ``nn.Sequential`` laid out exactly as the reference:
    outermost ``[downconv, inner, relu, upconv, tanh]``; innermost ``[lrelu, downconv, relu, upconv, norm]``;
    others ``[lrelu, downconv, norm, inner, relu, upconv, norm(, dropout)]``.
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
    ):
        super().__init__()
        self.outermost = outermost
        norm_layer, use_bias = _norm_layer(norm)
        in_channels = outer_channels if in_channels is None else in_channels
        if not innermost and submodule is None:
            raise ValueError("a non-innermost U-Net block needs a submodule")
        downconv = nn.Conv2d(in_channels, inner_channels, 4, stride=2, padding=1, bias=use_bias)

        layers: list[nn.Module]
        if outermost:
            if submodule is None:  # outermost and innermost at once: its layout has a submodule slot
                raise ValueError("an outermost U-Net block needs a submodule")
            upconv = nn.ConvTranspose2d(inner_channels * 2, outer_channels, 4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_channels, outer_channels, 4, stride=2, padding=1, bias=use_bias)
            layers = [nn.LeakyReLU(0.2), downconv, nn.ReLU(True), upconv, norm_layer(outer_channels)]
        else:
            upconv = nn.ConvTranspose2d(
                inner_channels * 2, outer_channels, 4, stride=2, padding=1, bias=use_bias
            )
            assert submodule is not None  # checked above: this block is not innermost
            layers = [nn.LeakyReLU(0.2), downconv, norm_layer(inner_channels), submodule]
            layers += [nn.ReLU(True), upconv, norm_layer(outer_channels)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        # The reference's first layer is an in-place LeakyReLU, which also rewrites x before the skip
        # concatenation: its skip connection carries LeakyReLU(x), not x. We reproduce that math explicitly.
        skip = self.model[0](x)
        out = skip
        # torch annotates Sequential.__getitem__ as "Sequential | Module" for ints and slices alike
        for layer in cast(nn.Sequential, self.model[1:]):
            out = layer(out)
        return torch.cat([skip, out], dim=1)  # (B, outer, h, w) ++ (B, outer, h, w) → (B, 2*outer, h, w)


class UnetGenerator(nn.Module):
    """Pix2Pix U-Net generator ("unet_256" for ``num_downs=8``): ``num_downs`` stride-2 levels with skips.

    Input (B, in_channels, H, W) in [-1, 1]; output (B, out_channels, H, W) in [-1, 1] (tanh). H and W must be
    divisible by ``2 ** num_downs`` (see ``num_downs_for``). With ``use_dropout`` (pix2pix's default) the
    ``num_downs - 5`` inner decoder levels next to the bottleneck apply Dropout(0.5) (in train mode only).
    3→1 channels, ngf 64, 8 levels: 54,409,857 parameters.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
        init_gain: float = 0.02,
    ):
        super().__init__()
        if num_downs < _MIN_DOWNS:
            raise ValueError(f"num_downs must be at least {_MIN_DOWNS}, got {num_downs}")
        self.in_channels, self.out_channels, self.num_downs = in_channels, out_channels, num_downs
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(
                ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout
            )
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            out_channels, ngf, in_channels=in_channels, submodule=block, outermost=True, norm=norm
        )
        init_weights(self, gain=init_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.num_downs
        height, width = x.shape[-2:]
        if height % factor or width % factor:
            raise ValueError(
                f"UnetGenerator(num_downs={self.num_downs}) needs height and width divisible by {factor}, "
                f"got {height}x{width}; resize the input or pick num_downs with num_downs_for(size)"
            )
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN ("basic" = ``n_layers=3``, 70x70 receptive field): logits (B, 1, h, w) per image patch.

    Input (B, in_channels, H, W), by default ``cat([rgb, depth])`` in [-1, 1]; for 512² the output is 62x62.
    """

    def __init__(
        self,
        in_channels: int = 4,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        init_gain: float = 0.02,
    ):
        super().__init__()
        norm_layer, use_bias = _norm_layer(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last feature layer keeps the resolution
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=use_bias),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self, gain=init_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """PixelGAN: 1x1 convs 64→128→1 with LeakyReLU(0.2): one real/fake logit per pixel, (B, 1, H, W)."""

    def __init__(self, in_channels: int = 4, ndf: int = 64, norm: str = "batch", init_gain: float = 0.02):
        super().__init__()
        norm_layer, use_bias = _norm_layer(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=use_bias),
        )
        init_weights(self, gain=init_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@torch.no_grad()
def init_weights(net: nn.Module, gain: float = 0.02, seed: int | None = None) -> nn.Module:
    """pix2pix's "normal" init: conv weights ~ N(0, gain), BatchNorm weights ~ N(1, gain), all biases 0.

    With ``seed`` the draws come from a private generator, so the result is reproducible and the global RNG
    is left untouched. Returns ``net``.
    """
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(module.weight, 0.0, gain, generator=generator)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, gain, generator=generator)
        else:
            continue
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return net


def num_downs_for(size: int | tuple[int, int]) -> int:
    """The U-Net depth for an input side (or (H, W)): 8 for 256² and larger, 7 for 128², 6 for 64².

    In general the largest depth ≤ 8 with ``2 ** depth`` dividing every side (so the bottleneck is ≥ 1x1),
    e.g. 5 for 96 or 160. Raises ValueError when a side is not divisible by ``2 ** 5``.
    """
    sides = (size, size) if isinstance(size, int) else tuple(size)
    depth = 8
    for side in sides:
        if side <= 0:
            raise ValueError(f"image side must be positive, got {side}")
        twos = (side & -side).bit_length() - 1  # the exponent of 2 in side
        depth = min(depth, twos, int(math.log2(side)))
    if depth < _MIN_DOWNS:
        raise ValueError(f"a U-Net generator needs sides divisible by {2**_MIN_DOWNS}, got {sides}")
    return depth


def unet_generator(
    in_channels: int = 3,
    out_channels: int = 1,
    num_downs: int = 8,
    ngf: int = 64,
    norm: str = "batch",
    use_dropout: bool = True,
    init_gain: float = 0.02,
) -> UnetGenerator:
    """Build the Pix2Pix U-Net generator (RGB → depth by default)."""
    return UnetGenerator(in_channels, out_channels, num_downs, ngf, norm, use_dropout, init_gain)


def patch_discriminator(
    in_channels: int = 4, ndf: int = 64, n_layers: int = 3, norm: str = "batch", init_gain: float = 0.02
) -> PatchDiscriminator:
    """Build the PatchGAN discriminator (conditional: RGB + depth = 4 channels by default)."""
    return PatchDiscriminator(in_channels, ndf, n_layers, norm, init_gain)


def pixel_discriminator(
    in_channels: int = 4, ndf: int = 64, norm: str = "batch", init_gain: float = 0.02
) -> PixelDiscriminator:
    """Build the PixelGAN discriminator (conditional: RGB + depth = 4 channels by default)."""
    return PixelDiscriminator(in_channels, ndf, norm, init_gain)
