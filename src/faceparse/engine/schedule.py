"""Optimisers and the polynomial learning-rate decay of paper §4.2."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from faceparse.engine.config import OptimConfig


def make_optimizer(
    params: Iterable[nn.Parameter], optim: OptimConfig, lr_scale: float = 1.0
) -> torch.optim.Optimizer:
    """SGD (parsers) or Adam (translator) at ``optim.lr × lr_scale`` (joint training uses ÷10, paper §4.2)."""
    if optim.lr is None:
        raise ValueError("optimiser lr is unresolved; call faceparse.engine.config.resolve first")
    lr = optim.lr * lr_scale
    if optim.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    if optim.optimizer == "adam":
        betas = (float(optim.betas[0]), float(optim.betas[1]))
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=optim.weight_decay)
    raise ValueError(f"unknown optimizer {optim.optimizer!r} (sgd | adam)")


def poly_factor(iteration: int, total: int, power: float) -> float:
    """lr multiplier (1 - it/total)^power: 1 at the start, 0 at the end (paper §4.2, "polynomial decay")."""
    progress = min(max(iteration, 0), total) / total
    return (1.0 - progress) ** power


def make_poly_scheduler(
    optimizer: torch.optim.Optimizer, total: int, power: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Step it once per iteration; its state (last_epoch) goes into checkpoints."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: poly_factor(it, total, power))
