"""The model registry: one plain dict from name to builder, and one front door, ``build_model``.

Builders are given as ``"module:function"`` strings and imported on first use, so importing the registry is
cheap and a missing optional module (e.g. EAGRNet while it is being written) only fails when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

# name → (builder "module:function", one-line description)
MODELS: dict[str, tuple[str, str]] = {
    "bisenet": ("faceparse.models.bisenet:bisenet", "BiSeNet face parser (face-parsing.PyTorch layout)"),
    "eagrnet": ("faceparse.models.eagrnet:eagrnet", "EAGRNet face parser (tegusi/EAGRNet layout)"),
    "unet_generator": ("faceparse.models.pix2pix:unet_generator", "Pix2Pix U-Net generator, tanh output"),
    "patch_discriminator": ("faceparse.models.pix2pix:patch_discriminator", "Pix2Pix PatchGAN discriminator"),
    "pixel_discriminator": ("faceparse.models.pix2pix:pixel_discriminator", "Pix2Pix PixelGAN discriminator"),
}

PARSERS = ("bisenet", "eagrnet")


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(MODELS)


def get_builder(name: str) -> Any:
    """The builder function for ``name``; ValueError listing the known names if there is none."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    target = MODELS[name][0]
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        raise ValueError(f"model {name!r} is registered but its module {module_name} is not available") from e
    return getattr(module, attr)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model with its builder's keyword arguments, e.g.
    ``build_model("bisenet", num_classes=13, in_channels=1)``, ``build_model("unet_generator", num_downs=7)``.

    Models are plain ``nn.Module``s, randomly initialised; no IO, no downloads.
    """
    return get_builder(name)(**kwargs)
