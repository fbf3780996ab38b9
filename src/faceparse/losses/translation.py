"""RGB-to-depth translation loss L_DT = L_cGAN + λ·L_L1, λ = 100 (paper §3.2, Eq. 1-3; pix2pix).

The discriminator is conditional: it sees ``concat(rgb, depth)`` (3 + 1 = 4 channels) and returns logits
(B, 1, h, w), one per patch (PatchGAN) or pixel (PixelGAN). Tensors are in network space: ``rgb`` as fed
to the generator, depth in [-1, 1] (the generator's tanh range, faceparse.data.normalize), so L1 is
measured on that scale, as in pix2pix.

As in pix2pix the update is two steps: :func:`discriminator_loss` on a DETACHED fake (D maximises L_cGAN,
written as minimising the BCE of its real/fake decisions, ×0.5), then :func:`generator_loss` (G minimises
the non-saturating −log D(x, G(x)) plus λ·L1). Freezing D during the G step (``requires_grad_(False)``)
is the training loop's job; :func:`generator_loss` only builds the graph.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

GanMode = Literal["vanilla", "lsgan"]


class GANLoss(nn.Module):
    """Adversarial loss against a constant target: 1 for "real", 0 for "fake".

    ``vanilla``: binary cross-entropy on logits (pix2pix's default, Eq. 2).
    ``lsgan``: mean squared error between the raw D output and the target.
    """

    def __init__(self, mode: GanMode = "vanilla", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if mode not in ("vanilla", "lsgan"):
            raise ValueError(f"unknown GAN mode {mode!r}; choose 'vanilla' or 'lsgan'")
        self.mode = mode
        self.real_label = real_label
        self.fake_label = fake_label

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(prediction, target)
        return F.mse_loss(prediction, target)


def _as_gan_loss(gan_loss: GanMode | GANLoss) -> GANLoss:
    return gan_loss if isinstance(gan_loss, GANLoss) else GANLoss(gan_loss)


def _pair(rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Conditional-D input: (B, 3, H, W) + (B, 1, H, W) → (B, 4, H, W)."""
    if rgb.shape[0] != depth.shape[0] or rgb.shape[-2:] != depth.shape[-2:]:
        raise ValueError(f"rgb {tuple(rgb.shape)} and depth {tuple(depth.shape)} must share batch and size")
    return torch.cat([rgb, depth], dim=1)


def discriminator_loss(
    discriminator: nn.Module,
    rgb: torch.Tensor,
    depth_real: torch.Tensor,
    depth_fake: torch.Tensor,
    gan_loss: GanMode | GANLoss = "vanilla",
) -> torch.Tensor:
    """D's loss: 0.5·(GAN(D(x, x_D), real) + GAN(D(x, G(x)), fake)); the fake is detached (pix2pix).

    No gradient reaches the generator through this loss.
    """
    gan = _as_gan_loss(gan_loss)
    pred_real = discriminator(_pair(rgb, depth_real))  # (B, 1, h, w)
    pred_fake = discriminator(_pair(rgb, depth_fake.detach()))  # (B, 1, h, w)
    return 0.5 * (gan(pred_real, True) + gan(pred_fake, False))


def l1_loss(depth_fake: torch.Tensor, depth_real: torch.Tensor) -> torch.Tensor:
    """L_L1 (Eq. 3): mean absolute difference over all pixels, in network space ([-1, 1])."""
    return F.l1_loss(depth_fake, depth_real)


def generator_loss(
    discriminator: nn.Module,
    rgb: torch.Tensor,
    depth_real: torch.Tensor,
    depth_fake: torch.Tensor,
    lambda_l1: float,
    gan_loss: GanMode | GANLoss = "vanilla",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_DT for the generator (Eq. 1): GAN(D(x, G(x)), real) + λ·L1(G(x), x_D); λ is ``lambda_l1`` (the
    config's ``lambda_l1``, 100 as in pix2pix).

    Returns ``(loss_dt, {"gan": ..., "l1": ...})`` with the unweighted terms for logging.
    """
    gan = _as_gan_loss(gan_loss)
    pred_fake = discriminator(_pair(rgb, depth_fake))  # (B, 1, h, w)
    loss_gan = gan(pred_fake, True)
    loss_l1 = l1_loss(depth_fake, depth_real)
    loss_dt = loss_gan + lambda_l1 * loss_l1
    return loss_dt, {"gan": loss_gan, "l1": loss_l1}
