"""The joint-training objective of paper Eq. 4, its terms and their weights (§3.2, §4.2).

    L = λ1·L_ML + λ2·L_E2E + λ3·L_CLS^RGB + λ4·L_CLS^Depth + λ5·L_DT      (:func:`joint_objective`)

* L_ML  = E‖F_R(x_R) − F_D(x_D)‖²: :func:`mutual_learning_loss` (cross-domain mutual learning).
* L_E2E = FPLoss(F_D(G(x_R)), y_R): :func:`e2e_loss` (depth parser on translated depth, RGB labels).
* L_CLS^RGB, L_CLS^Depth, FPLoss: the base parser's own loss, :func:`faceparse.losses.parser_loss`.
* L_DT: :func:`faceparse.losses.generator_loss`.

The training step that computes the terms, runs the discriminator's step and the updates is the engine's
(``faceparse.engine.joint.joint_step``). The λ values live in one place, the config (``JointConfig`` and
``Config.lambda_l1`` in ``faceparse.runs.config``, §4.2's values as defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from faceparse.labels import IGNORE_INDEX
from faceparse.losses.parsing import AnyParserOutput, main_logits

ML_LOSSES = ("mse_logits", "mse_probs", "kl")
ML_DIRECTIONS = ("both", "gated", "confident")


@dataclass
class JointWeights:
    """The λ of paper Eq. 4 and λ of Eq. 1 (L_DT's L1 weight). No defaults here: the paper's values
    (§4.2: 1, 1, 0.5, 0.5, 1 and 100) are the config's defaults, ``runs.config.joint_weights(cfg)``.

    Attributes:
        lambda1: L_ML, mutual learning between the RGB and depth parsers' last-layer logits.
        lambda2: L_E2E, FPLoss of the depth parser on translated depth G(x_R) against RGB labels y_R.
        lambda3: L_CLS^RGB, the RGB parser's own loss on (x_R, y_R).
        lambda4: L_CLS^Depth, the depth parser's own loss on ground-truth depth (x_D, y_D).
        lambda5: L_DT, the translator's loss L_cGAN + λ·L_L1.
        lambda_l1: λ inside L_DT (Eq. 1).

    Ablations set a weight to 0 (paper Table 7: λ1 = 0 drops L_ML, λ2 = 0 drops L_E2E).
    """

    lambda1: float
    lambda2: float
    lambda3: float
    lambda4: float
    lambda5: float
    lambda_l1: float

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {value}")

    @property
    def lambdas(self) -> tuple[float, float, float, float, float]:
        """(λ1, ..., λ5), in the order of :class:`JointTerms`."""
        return (self.lambda1, self.lambda2, self.lambda3, self.lambda4, self.lambda5)


class JointTerms(NamedTuple):
    """The five unweighted terms of Eq. 4, in λ order (scalar tensors)."""

    loss_ml: torch.Tensor  # λ1: L_ML
    loss_e2e: torch.Tensor  # λ2: L_E2E
    loss_cls_rgb: torch.Tensor  # λ3: L_CLS^RGB
    loss_cls_depth: torch.Tensor  # λ4: L_CLS^Depth
    loss_dt: torch.Tensor  # λ5: L_DT


def joint_objective(terms: JointTerms, weights: JointWeights) -> torch.Tensor:
    """Paper Eq. 4: L = λ1·L_ML + λ2·L_E2E + λ3·L_CLS^RGB + λ4·L_CLS^Depth + λ5·L_DT."""
    return (
        weights.lambda1 * terms.loss_ml
        + weights.lambda2 * terms.loss_e2e
        + weights.lambda3 * terms.loss_cls_rgb
        + weights.lambda4 * terms.loss_cls_depth
        + weights.lambda5 * terms.loss_dt
    )


@dataclass(frozen=True)
class MutualLearning:
    """The readings of L_ML that the paper leaves open (SCIENCE.md; docs/method.md). The default is the
    literal Eq. 4: squared L2 between the main logits, mean over elements, both parsers trained.

    Attributes:
        loss: ``mse_logits`` (Eq. 4) · ``mse_probs`` (squared L2 between softmax probabilities) · ``kl``
            (Deep Mutual Learning: KL(p_teacher ‖ p_student) between distributions softened by
            ``temperature``, scaled by T², the teacher detached).
        direction: ``both`` (Eq. 4: each parser pulled towards the other) · ``gated`` (on each paired
            pixel, only the parser whose argmax is wrong learns from the one whose argmax is right, by the
            labels; other pixels add nothing) · ``confident`` (on each pixel, the less confident parser
            learns from the more confident one; no labels). ``gated`` and ``confident`` detach the teacher.
        temperature: softening for ``kl``.
    """

    loss: Literal["mse_logits", "mse_probs", "kl"] = "mse_logits"
    direction: Literal["both", "gated", "confident"] = "both"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.loss not in ML_LOSSES:
            raise ValueError(f"joint.ml_loss must be one of {ML_LOSSES}, got {self.loss!r}")
        if self.direction not in ML_DIRECTIONS:
            raise ValueError(f"joint.ml_direction must be one of {ML_DIRECTIONS}, got {self.direction!r}")
        if not self.temperature > 0:
            raise ValueError(f"joint.ml_temperature must be > 0, got {self.temperature}")


def mutual_learning_loss(
    logits_rgb: AnyParserOutput,
    logits_depth: AnyParserOutput,
    options: MutualLearning | None = None,
    label: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_ML (Eq. 4, first term): by default the mean squared difference of the two parsers' last-layer
    logits; ``options`` selects another reading (:class:`MutualLearning`); ``label`` (B, H, W) is needed by
    ``direction="gated"`` only.

    Accepts logits (B, C, H, W) or the parsers' outputs (their main logits are used). If the two maps differ
    in size, both are bilinearly resized (align_corners=True) to the larger one.

    Reduction: the mean over ALL elements (batch, classes, pixels), i.e. ``F.mse_loss``. Eq. 4's
    E‖·‖² read literally would sum over C·H·W per sample, making λ1 = 1 outweigh the other terms by about
    six orders of magnitude at 448², so we take the per-element mean. The other readings keep that scale:
    a per-pixel distance (mean over classes for the squared ones, sum for KL) averaged over all pixels,
    masked pixels counting as zero.

    Bidirectional (§3.2): with ``direction="both"`` neither side is detached, so BOTH parsers receive
    gradients (unlike one-way distillation from a fixed teacher).
    """
    options = options or MutualLearning()
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
    if options.direction == "both" and options.loss == "mse_logits":
        return F.mse_loss(rgb_main, depth_main)  # the literal Eq. 4
    if options.direction == "both":
        if options.loss == "mse_probs":  # symmetric: one term, both sides trained
            return _distance(rgb_main, depth_main, options).mean()
        # kl is directed: each parser learns from the other, detached (Deep Mutual Learning)
        to_rgb = _distance(rgb_main, depth_main.detach(), options)
        to_depth = _distance(depth_main, rgb_main.detach(), options)
        return (to_rgb + to_depth).mean()
    if options.direction == "gated":
        if label is None:
            raise ValueError("joint.ml_direction=gated needs the paired labels")
        target = _label_at(label, size)  # (B, H, W)
        valid = target != IGNORE_INDEX
        rgb_right = (rgb_main.argmax(1) == target) & valid
        depth_right = (depth_main.argmax(1) == target) & valid
        rgb_learns, depth_learns = depth_right & ~rgb_right, rgb_right & ~depth_right
    else:  # confident
        rgb_conf = rgb_main.detach().float().softmax(1).amax(1)  # (B, H, W)
        depth_conf = depth_main.detach().float().softmax(1).amax(1)
        rgb_learns, depth_learns = depth_conf > rgb_conf, rgb_conf > depth_conf
    to_rgb = _distance(rgb_main, depth_main.detach(), options) * rgb_learns
    to_depth = _distance(depth_main, rgb_main.detach(), options) * depth_learns
    return (to_rgb + to_depth).mean()


def _distance(student: torch.Tensor, teacher: torch.Tensor, options: MutualLearning) -> torch.Tensor:
    """Per-pixel distance (B, H, W) of ``student`` from ``teacher`` (both (B, C, H, W) logits)."""
    if options.loss == "mse_logits":
        return (student - teacher).pow(2).mean(1)
    if options.loss == "mse_probs":
        return (student.softmax(1) - teacher.softmax(1)).pow(2).mean(1)
    t = options.temperature
    log_p_student = F.log_softmax(student / t, dim=1)
    log_p_teacher = F.log_softmax(teacher / t, dim=1)
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1) * (t * t)


def _label_at(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(label.shape[-2:]) == size:
        return label
    resized = F.interpolate(label[:, None].float(), size=size, mode="nearest")
    return resized[:, 0].long()


ParserLoss = Callable[[AnyParserOutput, torch.Tensor], torch.Tensor]


def e2e_loss(
    output_depth_on_fake: AnyParserOutput, label_rgb: torch.Tensor, loss_fn: ParserLoss
) -> torch.Tensor:
    """L_E2E (Eq. 4, second term): FPLoss(F_D(G(x_R)), y_R).

    ``output_depth_on_fake`` is the depth parser's output on TRANSLATED depth G(x_R), ``label_rgb`` the
    labels of those RGB images, ``loss_fn`` the base parser's loss (:func:`parser_loss`). The fake depth
    must NOT have been detached: the loss then trains both the depth parser and the generator (§3.2).
    """
    return loss_fn(output_depth_on_fake, label_rgb)
