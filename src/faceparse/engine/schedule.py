"""Optimisers, parameter groups, warm-up and the polynomial learning-rate decay of paper §4.2.

The paper states SGD (momentum 0.9, weight decay 5e-4) with poly decay for the parsers; the code its
authors trained BiSeNet with (face-parsing.PyTorch ``optimizer.py``, FACTS §4) adds three things that
:class:`~faceparse.runs.config.OptimConfig` exposes and ``resolve`` turns on for BiSeNet:

* parameter groups: the feature-fusion module and the three output heads at ``head_lr_mult`` (10×) the
  learning rate (``models.bisenet.param_groups``);
* no weight decay on normalisation parameters and biases (``decay_norms: false``);
* a geometric warm-up from ``warmup_start_lr`` (1e-5) to the base rate over ``warmup_iters`` (1,000),
  then poly decay over the remaining iterations.

EAGRNet's reference (tegusi/EAGRNet ``train.py``) uses one group, decay on everything and no warm-up.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from faceparse.runs.config import OptimConfig


def _groups(module: nn.Module) -> dict[str, list[nn.Parameter]]:
    """``{"wd", "no_wd", "head_wd", "head_no_wd"}`` for any module: BiSeNet's own head split, else a
    generic one (tensors with one dimension — norm weights, biases — are ``no_wd``; no head)."""
    from faceparse.models.bisenet import BiSeNet, param_groups

    if isinstance(module, BiSeNet):
        return param_groups(module)
    groups: dict[str, list[nn.Parameter]] = {"wd": [], "no_wd": [], "head_wd": [], "head_no_wd": []}
    for param in module.parameters():
        groups["wd" if param.ndim > 1 else "no_wd"].append(param)
    return groups


def optimizer_groups(module: nn.Module, optim: OptimConfig, lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """Parameter groups with their own ``lr`` and ``weight_decay`` (empty groups are dropped).

    One group when ``head_lr_mult`` is 1 and ``decay_norms`` is true (the paper's plain reading).
    """
    if optim.lr is None or optim.head_lr_mult is None or optim.decay_norms is None:
        raise ValueError("optimiser settings are unresolved; call faceparse.runs.config.resolve first")
    lr = optim.lr * lr_scale
    if optim.head_lr_mult == 1.0 and optim.decay_norms:
        return [{"params": [p for p in module.parameters() if p.requires_grad], "lr": lr, "name": "all"}]
    groups = []
    for name, params in _groups(module).items():
        params = [p for p in params if p.requires_grad]
        if not params:
            continue
        head = name.startswith("head_")
        decay = 0.0 if name.endswith("no_wd") and not optim.decay_norms else optim.weight_decay
        groups.append(
            {
                "params": params,
                "lr": lr * (optim.head_lr_mult if head else 1.0),
                "weight_decay": decay,
                "name": name,
            }
        )
    return groups


def make_optimizer(module: nn.Module, optim: OptimConfig, lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """SGD (parsers) or Adam (translator) at ``optim.lr × lr_scale`` (joint training uses ÷10, paper §4.2),
    over :func:`optimizer_groups`."""
    groups = optimizer_groups(module, optim, lr_scale)
    lr = groups[0]["lr"]
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    if optim.optimizer == "adam":
        betas = (float(optim.betas[0]), float(optim.betas[1]))
        return torch.optim.Adam(groups, lr=lr, betas=betas, weight_decay=optim.weight_decay)
    raise ValueError(f"unknown optimizer {optim.optimizer!r} (sgd | adam)")


def poly_factor(iteration: int, total: int, power: float) -> float:
    """lr multiplier (1 - it/total)^power: 1 at the start, 0 at the end (paper §4.2, "polynomial decay")."""
    progress = min(max(iteration, 0), total) / total
    return (1.0 - progress) ** power


def lr_factor(iteration: int, total: int, power: float, warmup: int = 0, warmup_ratio: float = 1.0) -> float:
    """Warm-up then poly, as face-parsing.PyTorch's ``Optimizer.get_lr``.

    During ``warmup`` iterations the rate grows geometrically from ``warmup_ratio`` × base to base
    (``ratio ** (1 - it/warmup)``); afterwards poly decay runs over the remaining ``total - warmup``.
    """
    if warmup <= 0:
        return poly_factor(iteration, total, power)
    if iteration < warmup:
        return warmup_ratio ** (1.0 - iteration / warmup)
    return poly_factor(iteration - warmup, max(total - warmup, 1), power)


def make_poly_scheduler(
    optimizer: torch.optim.Optimizer,
    total: int,
    power: float,
    warmup: int = 0,
    warmup_ratio: float = 1.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Step it once per iteration; its state (last_epoch) goes into checkpoints. Every group keeps its own
    base rate (heads at 10×) and follows the same multiplier."""
    warmup = min(max(warmup, 0), total)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, total, power, warmup, warmup_ratio)
    )


def scheduler_for(optimizer: torch.optim.Optimizer, optim: OptimConfig, total: int, warmup: int):
    """The scheduler of one stage: ``warmup`` iterations from ``optim.warmup_start_lr`` then poly."""
    assert optim.lr is not None
    ratio = min(optim.warmup_start_lr / optim.lr, 1.0) if warmup > 0 else 1.0
    return make_poly_scheduler(optimizer, total, optim.poly_power, warmup, ratio)
