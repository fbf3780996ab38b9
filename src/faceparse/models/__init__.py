"""Networks: BiSeNet and EAGRNet face parsers, the Pix2Pix generator and discriminators, and a small registry.

Use ``build_model(name, **kwargs)``; ``list_models()`` gives the names. Both parsers return a
:class:`ParserOutput` (main logits, auxiliary logits, edge logits). Pretrained weights are loaded by
``faceparse.models.pretrained`` (local files only). See docs/models.md for input/output ranges.
"""

from faceparse.models.bisenet import BiSeNet, bisenet
from faceparse.models.output import ParserOutput
from faceparse.models.pix2pix import (
    PatchDiscriminator,
    PixelDiscriminator,
    UnetGenerator,
    init_weights,
    num_downs_for,
)
from faceparse.models.registry import MODELS, PARSERS, build_model, list_models

__all__ = [
    "MODELS",
    "PARSERS",
    "BiSeNet",
    "ParserOutput",
    "PatchDiscriminator",
    "PixelDiscriminator",
    "UnetGenerator",
    "bisenet",
    "build_model",
    "init_weights",
    "list_models",
    "num_downs_for",
]
