"""faceparse: face parsing from RGB and depth with cross-domain mutual learning.

Implements Lee, Bhattarai and Kim, "Face Parsing from RGB and Depth Using Cross-Domain Mutual
Learning", CVPR Workshops 2021. See docs/method.md for how each part of the paper maps to code.

The front door (each name is imported on first use, so ``import faceparse`` stays fast)::

    import faceparse as fp
    parser = fp.face_parser("runs/synthetic-fast/joint")          # a checkpoint, .safetensors or .pth
    out = parser("face.jpg")                                       # logits, labels, classes, ...
    net = fp.build_model("bisenet", num_classes=13, in_channels=1)  # fp.list_models() names them
    cfg = fp.load_config("synthetic-fast", {"parsers.iterations": 100})
    last = fp.train(cfg, "pretrain-rgb")                           # or fp.train("demo", overrides=...)
    scores = fp.evaluate(last, split="val")                        # per-class and mean F1, L1
    networks, meta = fp.load_checkpoint(last)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name → "module:attribute", resolved on first access (PEP 562)
_FRONT_DOOR = {
    "face_parser": "faceparse.inference.predictor:face_parser",
    "build_model": "faceparse.models.registry:build_model",
    "list_models": "faceparse.models.registry:list_models",
    "load_config": "faceparse.runs.config:load_config",
    "Config": "faceparse.runs.config:Config",
    "train": "faceparse.engine.loop:train",
    "evaluate": "faceparse.eval.run:evaluate_checkpoint",
    "load_checkpoint": "faceparse.runs.checkpoint:load_checkpoint",
}

__all__ = [
    "Config",
    "__version__",
    "build_model",
    "evaluate",
    "face_parser",
    "list_models",
    "load_checkpoint",
    "load_config",
    "train",
]

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from faceparse.engine.loop import train
    from faceparse.eval.run import evaluate_checkpoint as evaluate
    from faceparse.inference.predictor import face_parser
    from faceparse.models.registry import build_model, list_models
    from faceparse.runs.checkpoint import load_checkpoint
    from faceparse.runs.config import Config, load_config


def __getattr__(name: str) -> Any:
    target = _FRONT_DOOR.get(name)
    if target is None:
        raise AttributeError(f"module 'faceparse' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_FRONT_DOOR])
