"""BiSeNet face parser, exactly as face-parsing.PyTorch builds it.

Yu et al., "BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation", ECCV 2018,
in the variant of zllrunning/face-parsing.PyTorch (``model.py``), whose released ``79999_iter.pth`` is
the most-used pretrained face parser. The paper uses BiSeNet as one of its two base parsers (paper §4.1).

Details that decide numerical equality with the reference (FACTS §4):

* ResNet-18 context path. The spatial path is not built: the 1/8 backbone feature takes its place.
* Attention refinement (ARM) on the 1/16 and 1/32 features; the global context is avg-pool → 1x1
  ConvBNReLU → nearest upsampling, and the context path upsamples with ``nearest``.
* Feature fusion (FFM): 1x1 ConvBNReLU, then channel attention, added back to its input.
* Heads: 3x3 ConvBNReLU then a 1x1 conv. Every conv has ``bias=False``.
* All three outputs are upsampled bilinearly (``align_corners=True``) to the input size; main output first.

Under autocast the final 1x1 classifier convs and the upsampling run in float32 (outputs are float32): logits
rounded to bf16 would flip the argmax wherever two classes are close. In float32 this changes nothing.

Input: (B, in_channels, H, W); RGB is ImageNet-normalised (``faceparse.data.normalize.rgb_for_parser``),
depth is ``2n - 1``. H and W need not be multiples of 32 (odd feature sizes are resampled back), but the
reference was trained at multiples of 32. Output: ``ParserOutput(out, aux=(out16, out32))``, each
(B, num_classes, H, W) logits; ``out`` is the prediction, the two auxiliary heads are used only by the
training loss.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from faceparse.models.output import ParserOutput
from faceparse.models.resnet import ResNet18Trunk


class ConvBNReLU(nn.Module):
    """Conv (no bias) → BatchNorm → ReLU; ``padding`` keeps the size for stride 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class AttentionRefinementModule(nn.Module):
    """3x3 ConvBNReLU, then a per-channel sigmoid gate computed from the globally pooled feature."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 3)
        self.conv_atten = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        atten = F.adaptive_avg_pool2d(feat, 1)  # (B, C, 1, 1)
        atten = torch.sigmoid(self.bn_atten(self.conv_atten(atten)))
        return feat * atten


class ContextPath(nn.Module):
    """ResNet-18 + ARMs + global context → ``(feat8, feat_cp8, feat_cp16)``, 128 ch at 1/8, 1/8, 1/16."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.resnet = ResNet18Trunk(in_channels)
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3)
        self.conv_head16 = ConvBNReLU(128, 128, 3)
        self.conv_avg = ConvBNReLU(512, 128, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)

        context = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))  # (B, 128, 1, 1)
        context = F.interpolate(context, size=feat32.shape[2:], mode="nearest")  # (B, 128, H/32, W/32)

        feat32_sum = self.arm32(feat32) + context
        feat32_up = F.interpolate(feat32_sum, size=feat16.shape[2:], mode="nearest")  # (B, 128, H/16, W/16)
        feat32_up = self.conv_head32(feat32_up)

        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = F.interpolate(feat16_sum, size=feat8.shape[2:], mode="nearest")  # (B, 128, H/8, W/8)
        feat16_up = self.conv_head16(feat16_up)
        return feat8, feat16_up, feat32_up


class FeatureFusionModule(nn.Module):
    """Concatenate the two paths, 1x1 ConvBNReLU, then ``feat + feat * channel_attention(feat)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_channels, out_channels, 1)
        self.conv1 = nn.Conv2d(out_channels, out_channels // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels // 4, out_channels, 1, bias=False)

    def forward(self, feat_spatial: torch.Tensor, feat_context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([feat_spatial, feat_context], dim=1))  # (B, out_channels, h, w)
        atten = F.adaptive_avg_pool2d(feat, 1)  # (B, out_channels, 1, 1)
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(atten))))
        return feat + feat * atten


class BiSeNetOutput(nn.Module):
    """Segmentation head: 3x3 ConvBNReLU then a 1x1 conv to class logits (no bias)."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels, 3)
        self.conv_out = nn.Conv2d(mid_channels, num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        # Class logits in float32 even under autocast: bf16 keeps ~3 significant digits, coarser than the
        # top-2 margin at many pixels, and the upsampling to full size would spread that rounding.
        with torch.autocast(x.device.type, enabled=False):
            return self.conv_out(feat.float())


class BiSeNet(nn.Module):
    """face-parsing.PyTorch's BiSeNet. ``forward(x)`` → ``ParserOutput(out, (out16, out32))``,
    each (B, num_classes, H, W).

    The state_dict has exactly the keys, order and shapes of the released ``79999_iter.pth``
    (``shared/reference/bisenet19_state_dict.tsv``). ``in_channels=1`` changes only ``cp.resnet.conv1``.
    Parameters: 13,300,416 (19 classes, RGB), 13,294,144 (19 classes, 1 channel).
    """

    def __init__(self, num_classes: int = 19, in_channels: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.cp = ContextPath(in_channels)
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, num_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, num_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's init: Kaiming-normal (a=1) for every conv outside the backbone.

        The backbone keeps PyTorch's default init (or ImageNet weights, loaded separately); BatchNorm
        starts at weight 1, bias 0.
        """
        backbone = set(self.cp.resnet.modules())
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module not in backbone:
                nn.init.kaiming_normal_(module.weight, a=1)

    def forward(self, x: torch.Tensor) -> ParserOutput:
        size = x.shape[2:]
        feat8, feat_cp8, feat_cp16 = self.cp(x)
        feat_fuse = self.ffm(feat8, feat_cp8)  # (B, 256, H/8, W/8); feat8 stands in for the spatial path

        # float32 logits (see BiSeNetOutput) at 1/8, 1/8, 1/16, then upsampled in float32
        logits = (self.conv_out(feat_fuse), self.conv_out16(feat_cp8), self.conv_out32(feat_cp16))
        out, out16, out32 = (
            F.interpolate(lg, size=size, mode="bilinear", align_corners=True) for lg in logits
        )  # each (B, num_classes, H, W)
        return ParserOutput(out, (out16, out32))


def param_groups(model: BiSeNet) -> dict[str, list[nn.Parameter]]:
    """face-parsing.PyTorch's optimiser groups: conv/linear weights get weight decay, norms do not, and the
    fusion module plus the three heads form the "head" groups (the reference trains them at 10x the lr).

    Returns ``{"wd", "no_wd", "head_wd", "head_no_wd"}``, covering every parameter exactly once.
    """
    groups: dict[str, list[nn.Parameter]] = {"wd": [], "no_wd": [], "head_wd": [], "head_no_wd": []}
    for child_name, child in model.named_children():
        prefix = "head_" if child_name != "cp" else ""
        for module in child.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                # torch annotates weight and bias as Tensor; on these layers they are Parameters
                groups[prefix + "wd"].append(cast(nn.Parameter, module.weight))
                if module.bias is not None:
                    groups[prefix + "no_wd"].append(cast(nn.Parameter, module.bias))
            elif isinstance(module, nn.BatchNorm2d):
                groups[prefix + "no_wd"].extend(module.parameters(recurse=False))
    return groups


def bisenet(num_classes: int = 19, in_channels: int = 3) -> BiSeNet:
    """Build a randomly initialised BiSeNet (no IO; see ``faceparse.models.pretrained`` for weights)."""
    return BiSeNet(num_classes=num_classes, in_channels=in_channels)
