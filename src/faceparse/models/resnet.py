"""ResNet-18 trunk of BiSeNet's context path (He et al., CVPR 2016), laid out as face-parsing.PyTorch's.

The module names (``conv1``, ``bn1``, ``layer{1..4}.{0,1}.{conv,bn}{1,2}``, ``downsample.{0,1}``) are
torchvision's, so ImageNet weights load by name (``faceparse.models.pretrained.load_imagenet_backbone``),
and the fully connected head is absent: the trunk returns the 1/8, 1/16 and 1/32 features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus an identity (or 1x1 conv-BN projection) shortcut, ReLU after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if in_channels != out_channels or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = F.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        BasicBlock(in_channels, out_channels, stride), BasicBlock(out_channels, out_channels, 1)
    )


class ResNet18Trunk(nn.Module):
    """ResNet-18 without pooling head. ``forward`` returns ``(feat8, feat16, feat32)``.

    Shapes for an input (B, in_channels, H, W): feat8 (B, 128, H/8, W/8), feat16 (B, 256, H/16, W/16),
    feat32 (B, 512, H/32, W/32) (each side rounded up, as strided convs do).
    """

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, stride=1)
        self.layer2 = _stage(64, 128, stride=2)
        self.layer3 = _stage(128, 256, stride=2)
        self.layer4 = _stage(256, 512, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        x = self.layer1(x)
        feat8 = self.layer2(x)  # (B, 128, H/8, W/8)
        feat16 = self.layer3(feat8)  # (B, 256, H/16, W/16)
        feat32 = self.layer4(feat16)  # (B, 512, H/32, W/32)
        return feat8, feat16, feat32
