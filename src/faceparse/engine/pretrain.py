"""Pre-training steps (paper §3.2 "we first separately pre-train each of the base networks", §4.2).

Each step takes the networks, their optimisers, a batch from the loader and a ``backward`` callable
(``fabric.backward``, or ``Tensor.backward`` outside Fabric), runs one optimisation step and returns the
detached loss terms. A non-finite loss raises :class:`NonFiniteLoss` BEFORE any weight changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from faceparse.data.normalize import depth_for_network, rgb_for_generator, rgb_for_parser
from faceparse.losses import discriminator_loss, generator_loss

Backward = Callable[[torch.Tensor], None]
LossFn = Callable[..., torch.Tensor]


def plain_backward(loss: torch.Tensor) -> None:
    loss.backward()


class NonFiniteLoss(FloatingPointError):
    """A loss term became NaN or inf; ``term`` names it, the training loop adds the iteration."""

    def __init__(self, term: str, value: float, iteration: int | None = None):
        self.term, self.value, self.iteration = term, value, iteration
        where = "" if iteration is None else f" at iteration {iteration}"
        super().__init__(f"loss term {term!r} is {value}{where}")


def check_finite(terms: dict[str, torch.Tensor]) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value.detach()).all():
            raise NonFiniteLoss(name, float(value.detach().float().sum()))


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a Fabric wrapper (its forward bypasses DDP's gradient bookkeeping)."""
    from lightning_fabric.wrappers import _FabricModule

    return module.module if isinstance(module, _FabricModule) else module


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Yield the plain module with ``requires_grad`` off (pix2pix: D is frozen during the G step).

    The plain (unwrapped) module is used so that, under DDP, a forward without a backward into D does
    not leave DDP waiting for D's gradients.
    """
    plain = unwrap(module)
    flags = [p.requires_grad for p in plain.parameters()]
    plain.requires_grad_(False)
    try:
        yield plain
    finally:
        for p, flag in zip(plain.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def rgb_parser_step(
    parser_rgb: nn.Module, optimizer: torch.optim.Optimizer, batch: dict, loss_fn: LossFn, backward: Backward
) -> dict[str, torch.Tensor]:
    """F_R on (x_R, y_R): minimise L_CLS^RGB, the base parser's own loss."""
    logits_rgb = parser_rgb(
        rgb_for_parser(batch["rgb"])
    )  # BiSeNet: 3 × (B, C, H, W); EAGRNet: (B, C, H/4, W/4), ...
    loss_cls_rgb = loss_fn(logits_rgb, batch["label"])
    check_finite({"loss_cls_rgb": loss_cls_rgb})
    optimizer.zero_grad(set_to_none=True)
    backward(loss_cls_rgb)
    optimizer.step()
    return {"loss_cls_rgb": loss_cls_rgb.detach()}


def depth_parser_step(
    parser_depth: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict,
    loss_fn: LossFn,
    backward: Backward,
) -> dict[str, torch.Tensor]:
    """F_D on (x_D, y_D) of the depth-annotated subset: minimise L_CLS^Depth."""
    logits_depth = parser_depth(depth_for_network(batch["depth"]))  # depth (B, 1, H, W) in [-1, 1]
    loss_cls_depth = loss_fn(logits_depth, batch["label"])
    check_finite({"loss_cls_depth": loss_cls_depth})
    optimizer.zero_grad(set_to_none=True)
    backward(loss_cls_depth)
    optimizer.step()
    return {"loss_cls_depth": loss_cls_depth.detach()}


def discriminator_step(
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    rgb: torch.Tensor,
    depth_real: torch.Tensor,
    depth_fake: torch.Tensor,
    backward: Backward,
) -> torch.Tensor:
    """D maximises L_cGAN (Eq. 2) on a DETACHED fake: no gradient, hence no change, reaches G."""
    loss_d = discriminator_loss(discriminator, rgb, depth_real, depth_fake.detach())
    check_finite({"loss_d": loss_d})
    optimizer.zero_grad(set_to_none=True)
    backward(loss_d)
    optimizer.step()
    return loss_d.detach()


def translator_step(
    generator: nn.Module,
    discriminator: nn.Module,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    batch: dict,
    lambda_l1: float,
    backward: Backward,
) -> dict[str, torch.Tensor]:
    """Pix2Pix: a D step on the detached fake, then G minimises L_DT = L_cGAN + λ·L_L1 (Eq. 1), D frozen."""
    rgb = rgb_for_generator(batch["rgb"])  # (B, 3, H, W) in [-1, 1]
    depth_real = depth_for_network(batch["depth"])  # (B, 1, H, W) in [-1, 1]
    depth_fake = generator(rgb)  # (B, 1, H, W) tanh
    loss_d = discriminator_step(discriminator, optimizer_d, rgb, depth_real, depth_fake, backward)
    with frozen(discriminator) as discriminator_plain:
        loss_dt, parts = generator_loss(discriminator_plain, rgb, depth_real, depth_fake, lambda_l1)
    check_finite({"loss_dt": loss_dt})
    optimizer_g.zero_grad(set_to_none=True)
    backward(loss_dt)
    optimizer_g.step()
    return {
        "loss_dt": loss_dt.detach(),
        "loss_d": loss_d,
        "gan": parts["gan"].detach(),
        "l1": parts["l1"].detach(),
    }
