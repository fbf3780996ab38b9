"""The model registry: one plain dict from name to (builder, description), and one front door,
``build_model``. Checkpoints name their networks' builders by these names, so a checkpoint rebuilds its
networks with nothing but the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from faceparse.models.bisenet import bisenet
from faceparse.models.eagrnet import eagrnet
from faceparse.models.pix2pix import patch_discriminator, pixel_discriminator, unet_generator

MODELS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "bisenet": (bisenet, "BiSeNet face parser (face-parsing.PyTorch layout)"),
    "eagrnet": (eagrnet, "EAGRNet face parser (tegusi/EAGRNet layout)"),
    "unet_generator": (unet_generator, "Pix2Pix U-Net generator, tanh output"),
    "patch_discriminator": (patch_discriminator, "Pix2Pix PatchGAN discriminator"),
    "pixel_discriminator": (pixel_discriminator, "Pix2Pix PixelGAN discriminator"),
}

PARSERS = ("bisenet", "eagrnet")


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(MODELS)


def get_builder(name: str) -> Callable[..., nn.Module]:
    """The builder function for ``name``; ValueError listing the known names if there is none."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return MODELS[name][0]


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model with its builder's keyword arguments, e.g.
    ``build_model("bisenet", num_classes=13, in_channels=1)``, ``build_model("unet_generator", num_downs=7)``.

    Models are plain ``nn.Module``s, randomly initialised; no IO, no downloads.
    """
    return get_builder(name)(**kwargs)
