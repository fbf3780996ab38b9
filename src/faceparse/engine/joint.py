"""Joint training: one step of paper Eq. 4 (§3.2), with the batch composition of §4.2.

The step computes the five terms, runs D's step, weighs the terms with
:func:`faceparse.losses.joint_objective` (Eq. 4 itself: L = λ1·L_ML + λ2·L_E2E + λ3·L_CLS^RGB +
λ4·L_CLS^Depth + λ5·L_DT), then updates G, F_R and F_D. D maximises L_cGAN (inside L_DT) in its own step
on detached fakes; G, F_R and F_D minimise L.
Batch (docs/method.md): the first B/2 samples are depth-annotated (rgb, depth_real, label), the last
B/2 are RGB-labelled samples from the whole training split (rgb, label).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from faceparse.data.normalize import depth_for_network, rgb_for_generator, rgb_for_parser
from faceparse.engine.networks import Networks, Optimizers
from faceparse.engine.pretrain import Backward, LossFn, NonFiniteLoss, discriminator_step, frozen
from faceparse.losses import (
    JointTerms,
    JointWeights,
    MutualLearning,
    e2e_loss,
    generator_loss,
    joint_objective,
    mutual_learning_loss,
)
from faceparse.models import ParserOutput


def rows(
    output: ParserOutput | torch.Tensor | Sequence[torch.Tensor], start: int, stop: int
) -> ParserOutput | tuple[torch.Tensor, ...]:
    """Batch rows ``start:stop`` of every tensor of a parser's output: a :class:`ParserOutput` keeps its
    structure; a foreign model's bare tensor or sequence of tensors becomes a tuple."""
    if isinstance(output, ParserOutput):
        return output.map(lambda t: t[start:stop])
    outputs = (output,) if isinstance(output, torch.Tensor) else tuple(output)
    return tuple(t[start:stop] for t in outputs)


def joint_step(
    nets: Networks,
    optimizers: Optimizers,
    batch: dict,
    weights: JointWeights,
    loss_fn: LossFn,
    backward: Backward,
    ml: MutualLearning | None = None,
    depth_bn: str = "mixed",
) -> dict[str, torch.Tensor]:
    """One joint iteration. Returns the detached terms (unweighted) and the weighted total ``loss``.

    ``ml`` selects the reading of L_ML (default: the literal Eq. 4); ``depth_bn="separate"`` runs F_D on
    the real and the generated halves in two forwards, so that batch-norm statistics do not mix them and
    L_ML / L_CLS^Depth cannot reach G through them (docs/method.md)."""
    generator, discriminator = nets.require("generator"), nets.require("discriminator")
    parser_rgb, parser_depth = nets.require("parser_rgb"), nets.require("parser_depth")
    rgb, label = batch["rgb"], batch["label"]  # (B, 3, H, W) in [0, 1], (B, H, W)
    half = rgb.shape[0] // 2
    label_paired, label_rgb_only = label[:half], label[half:]
    depth_real = depth_for_network(batch["depth"][:half])  # (B/2, 1, H, W) in [-1, 1]

    # G translates all B images in one pass: paired half → L_DT, RGB-labelled half → F_D (L_E2E)
    rgb_g = rgb_for_generator(rgb)  # (B, 3, H, W) in [-1, 1]
    depth_fake = generator(rgb_g)  # (B, 1, H, W) in [-1, 1]
    depth_fake_paired, depth_fake_rgb_only = depth_fake[:half], depth_fake[half:]

    # D: maximise L_cGAN on detached fakes, its own optimiser step (pix2pix; Eq. 4 "competes to maximize")
    loss_d = discriminator_step(
        discriminator, optimizers.discriminator, rgb_g[:half], depth_real, depth_fake_paired, backward
    )

    # G, F_R, F_D: minimise L (Eq. 4)
    logits_rgb = parser_rgb(rgb_for_parser(rgb))  # all B RGB images
    if depth_bn == "separate":
        logits_depth_real = rows(parser_depth(depth_real), 0, half)
        logits_depth_fake = rows(parser_depth(depth_fake_rgb_only), 0, half)
    else:
        depth_mixed = torch.cat(
            [depth_real, depth_fake_rgb_only]
        )  # (B, 1, H, W): half real, half fake (§4.2)
        logits_depth = parser_depth(depth_mixed)  # one pass: BN sees the mixed batch
        logits_depth_real = rows(logits_depth, 0, half)
        logits_depth_fake = rows(logits_depth, half, 2 * half)

    # paired x_R, x_D; with the default reading nothing is detached (both parsers learn)
    loss_ml = mutual_learning_loss(rows(logits_rgb, 0, half), logits_depth_real, ml, label_paired)
    loss_e2e = e2e_loss(logits_depth_fake, label_rgb_only, loss_fn)  # gradients reach G through depth_fake
    loss_cls_rgb = loss_fn(logits_rgb, label)
    loss_cls_depth = loss_fn(logits_depth_real, label_paired)
    with frozen(discriminator) as frozen_discriminator:
        loss_dt, dt_parts = generator_loss(
            frozen_discriminator, rgb_g[:half], depth_real, depth_fake_paired, weights.lambda_l1
        )
    terms = JointTerms(loss_ml, loss_e2e, loss_cls_rgb, loss_cls_depth, loss_dt)
    loss = joint_objective(terms, weights)
    _check_weighted_finite(loss, terms, weights)

    trained = (optimizers.generator, optimizers.parser_rgb, optimizers.parser_depth)
    for optimizer in trained:
        optimizer.zero_grad(set_to_none=True)
    backward(loss)
    for optimizer in trained:
        optimizer.step()
    detached = {name: value.detach() for name, value in terms._asdict().items()}
    return {"loss": loss.detach(), **detached, "loss_d": loss_d, "l1": dt_parts["l1"].detach()}


def _check_weighted_finite(loss: torch.Tensor, terms: JointTerms, weights: JointWeights) -> None:
    """Name the first non-finite term that counts (a term weighted 0 is ignored), before any update."""
    for name, value, weight in zip(terms._fields, terms, weights.lambdas, strict=True):
        if weight != 0 and not torch.isfinite(value.detach()).all():
            raise NonFiniteLoss(name, float(value.detach().float().sum()))
    if not torch.isfinite(loss.detach()).all():
        raise NonFiniteLoss("loss", float(loss.detach().float()))
