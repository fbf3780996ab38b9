"""The four networks of the method, named by role (paper §3.2, Figure 3), and how each is built.

A :class:`NetworkSpec` is everything ``load_checkpoint`` needs to rebuild a network and feed it: the
registry name, its keyword arguments, what it takes as input and that input's normalisation
(``faceparse.data.normalize.NORMALIZATIONS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import nn

from faceparse.runs.config import Config


@dataclass(frozen=True)
class NetworkSpec:
    builder: str
    kwargs: dict[str, Any]
    input: str  # "rgb" | "depth" | "rgb+depth"
    normalization: str  # key of faceparse.data.normalize.NORMALIZATIONS
    output: str

    def build(self) -> nn.Module:
        from faceparse.models import build_model

        return build_model(self.builder, **self.kwargs)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def network_specs(cfg: Config) -> dict[str, NetworkSpec]:
    """F_R, F_D (same architecture, 3 vs 1 input channels, paper §4.2), G (U-Net), D (PixelGAN/PatchGAN)."""
    arch, classes = cfg.model.arch, cfg.model.num_classes
    if classes is None or cfg.model.generator_num_downs is None:
        raise ValueError("config is unresolved; call faceparse.runs.config.resolve first")
    parser_output = (
        "ParserOutput(logits, aux=(out16, out32)) at input size"
        if arch == "bisenet"
        else "ParserOutput(logits, edge=edge) at 1/4 size"
    )
    disc = f"{cfg.model.discriminator}_discriminator"
    return {
        "parser_rgb": NetworkSpec(
            arch, {"num_classes": classes, "in_channels": 3}, "rgb", "imagenet", parser_output
        ),
        "parser_depth": NetworkSpec(
            arch, {"num_classes": classes, "in_channels": 1}, "depth", "depth", parser_output
        ),
        "generator": NetworkSpec(
            "unet_generator",
            {
                "in_channels": 3,
                "out_channels": 1,
                "num_downs": cfg.model.generator_num_downs,
                "ngf": cfg.model.generator_ngf,
                "use_dropout": cfg.model.generator_dropout,
            },
            "rgb",
            "symmetric",
            "depth in [-1, 1] (tanh); nearness = faceparse.data.normalize.depth_from_network(output)",
        ),
        "discriminator": NetworkSpec(
            disc,
            {"in_channels": 4, "ndf": cfg.model.discriminator_ndf},
            "rgb+depth",
            "symmetric",
            "real/fake logits (B, 1, h, w)",
        ),
    }


@dataclass
class Networks:
    """The networks of one stage; roles a stage does not train stay ``None``."""

    parser_rgb: nn.Module | None = None
    parser_depth: nn.Module | None = None
    generator: nn.Module | None = None
    discriminator: nn.Module | None = None

    def items(self) -> Iterator[tuple[str, nn.Module]]:
        for f in fields(self):
            module = getattr(self, f.name)
            if module is not None:
                yield f.name, module

    def require(self, role: str) -> nn.Module:
        """The network of ``role``; a clear error when the stage did not build it."""
        module: nn.Module | None = getattr(self, role)
        if module is None:
            raise ValueError(f"network {role!r} is not set; this stage does not train it")
        return module


@dataclass
class Optimizers:
    """One optimiser per trained network, same roles as :class:`Networks`."""

    parser_rgb: Any = None
    parser_depth: Any = None
    generator: Any = None
    discriminator: Any = None

    def items(self) -> Iterator[tuple[str, Any]]:
        for f in fields(self):
            optimizer = getattr(self, f.name)
            if optimizer is not None:
                yield f.name, optimizer
