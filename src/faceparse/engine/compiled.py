"""``run.compile``: ``torch.compile`` (inductor) of the networks, for training.

Each network is compiled in place (``nn.Module.compile``), so it is still the same module: its
``state_dict`` keys, checkpoints and ``unwrap`` are unchanged (``torch.compile(module)`` would wrap it and
prefix every key with ``_orig_mod.``). Shapes are static (``dynamic=False``): a training run sees a few
fixed batch shapes (the joint stage's depth parser sees two), and each compiles once. What compiles on
the project's CPU, and the speed, are in docs/results.md ("torch.compile").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faceparse.engine.networks import Networks


def compile_networks(networks: Networks) -> list[str]:
    """Compile every network of ``networks`` in place; returns the roles compiled."""
    for _, module in networks.items():
        module.compile(dynamic=False)
    return [role for role, _ in networks.items()]
