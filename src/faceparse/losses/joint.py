"""The joint-training terms of paper Eq. 4 and their weights (§3.2, §4.2).

    L = λ1·L_ML + λ2·L_E2E + λ3·L_CLS^RGB + λ4·L_CLS^Depth + λ5·L_DT

* L_ML  = E‖F_R(x_R) − F_D(x_D)‖²: :func:`mutual_learning_loss` (cross-domain mutual learning).
* L_E2E = FPLoss(F_D(G(x_R)), y_R): :func:`e2e_loss` (depth parser on translated depth, RGB labels).
* L_CLS^RGB, L_CLS^Depth, FPLoss: the base parser's own loss, :func:`faceparse.losses.parser_loss`.
* L_DT: :func:`faceparse.losses.generator_loss`.

The training step that combines them is the engine's; this module holds the pieces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceparse.losses.parsing import ParserOutput, main_logits
from faceparse.losses.translation import LAMBDA_L1


@dataclass
class JointWeights:
    """The λ of paper Eq. 4 (values from §4.2) and λ of Eq. 1.

    Attributes:
        lambda1: L_ML, mutual learning between the RGB and depth parsers' last-layer logits.
        lambda2: L_E2E, FPLoss of the depth parser on translated depth G(x_R) against RGB labels y_R.
        lambda3: L_CLS^RGB, the RGB parser's own loss on (x_R, y_R).
        lambda4: L_CLS^Depth, the depth parser's own loss on ground-truth depth (x_D, y_D).
        lambda5: L_DT, the translator's loss L_cGAN + λ·L_L1.
        lambda_l1: λ inside L_DT (Eq. 1), 100 as in pix2pix.

    Ablations set a weight to 0 (paper Table 7: λ1 = 0 drops L_ML, λ2 = 0 drops L_E2E).
    """

    lambda1: float = 1.0
    lambda2: float = 1.0
    lambda3: float = 0.5
    lambda4: float = 0.5
    lambda5: float = 1.0
    lambda_l1: float = LAMBDA_L1

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {value}")


def mutual_learning_loss(logits_rgb: ParserOutput, logits_depth: ParserOutput) -> torch.Tensor:
    """L_ML (Eq. 4, first term): mean squared difference of the two parsers' last-layer logits.

    Accepts logits (B, C, H, W) or the parsers' output tuples (main logits first). If the two maps differ
    in size, both are bilinearly resized (align_corners=True) to the larger one.

    Reduction: the mean over ALL elements (batch, classes, pixels), i.e. ``F.mse_loss``. Eq. 4's
    E‖·‖² read literally would sum over C·H·W per sample, making λ1 = 1 outweigh the other terms by about
    six orders of magnitude at 448², so we take the per-element mean.

    Bidirectional (§3.2): neither side is detached, so BOTH parsers receive gradients (unlike one-way
    distillation from a fixed teacher).
    """
    rgb_main = main_logits(logits_rgb)  # (B, C, H_r, W_r)
    depth_main = main_logits(logits_depth)  # (B, C, H_d, W_d)
    if rgb_main.shape[:2] != depth_main.shape[:2]:
        raise ValueError(
            f"RGB logits {tuple(rgb_main.shape)} and depth logits {tuple(depth_main.shape)} "
            "must have the same batch size and number of classes"
        )
    size = (max(rgb_main.shape[-2], depth_main.shape[-2]), max(rgb_main.shape[-1], depth_main.shape[-1]))
    rgb_main = main_logits(rgb_main, size)  # (B, C, H, W)
    depth_main = main_logits(depth_main, size)  # (B, C, H, W)
    return F.mse_loss(rgb_main, depth_main)


ParserLoss = Callable[[ParserOutput, torch.Tensor], torch.Tensor]


def e2e_loss(
    output_depth_on_fake: ParserOutput, label_rgb: torch.Tensor, loss_fn: ParserLoss
) -> torch.Tensor:
    """L_E2E (Eq. 4, second term): FPLoss(F_D(G(x_R)), y_R).

    ``output_depth_on_fake`` is the depth parser's output on TRANSLATED depth G(x_R), ``label_rgb`` the
    labels of those RGB images, ``loss_fn`` the base parser's loss (:func:`parser_loss`). The fake depth
    must NOT have been detached: the loss then trains both the depth parser and the generator (§3.2).
    """
    return loss_fn(output_depth_on_fake, label_rgb)


def e2e_loss_from_rgb(
    parser_depth: nn.Module,
    generator: nn.Module,
    rgb_for_generator: torch.Tensor,
    label_rgb: torch.Tensor,
    loss_fn: ParserLoss,
    depth_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_E2E computed from RGB: translate, parse, score. Returns ``(loss_e2e, depth_fake)``.

    The generator's tanh output in [-1, 1] already is the depth parser's input space (nearness·2 − 1,
    faceparse.data.normalize), so ``depth_transform`` defaults to the identity.
    """
    depth_fake = generator(rgb_for_generator)  # (B, 1, H, W) in [-1, 1]
    depth_input = depth_fake if depth_transform is None else depth_transform(depth_fake)
    return e2e_loss(parser_depth(depth_input), label_rgb, loss_fn), depth_fake
