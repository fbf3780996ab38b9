"""Input normalisation, in one place. Checkpoints record which of these a network was trained with.

* Parsers on RGB: ImageNet mean/std on RGB in [0, 1] (face-parsing.PyTorch and EAGRNet do this, FACTS §4).
* Parsers on depth and the Pix2Pix generator/discriminator: values in [-1, 1] (``2x - 1``), so depth
  background is -1, matching the generator's tanh output (faceparse.data.encoding).
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def rgb_for_parser(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] → ImageNet-normalised parser input."""
    mean = rgb.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = rgb.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (rgb - mean) / std


def rgb_for_generator(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] → [-1, 1] (pix2pix convention)."""
    return rgb * 2.0 - 1.0


def depth_for_network(depth: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) nearness in [0, 1] → [-1, 1]; background (0) becomes -1."""
    return depth * 2.0 - 1.0


def depth_from_network(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] → nearness in [0, 1]."""
    return (x + 1.0) * 0.5


NORMALIZATIONS = {
    "imagenet": rgb_for_parser,
    "symmetric": rgb_for_generator,
    "depth": depth_for_network,
}
