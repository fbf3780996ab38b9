"""Training engine: configs, pre-training and joint training (paper Eq. 4), checkpoints, resume, DDP.

Front doors:

* :func:`train` (``faceparse train``): run a stage or ``all`` stages from a config; returns the last
  checkpoint folder.
* :func:`load_checkpoint`: rebuild the networks of a checkpoint (or a stage/run folder) with their
  metadata: resolved config, label scheme, each network's input normalisation.
* :func:`load_config`: a typed :class:`Config` from a YAML file or preset name plus ``key=value`` overrides.

Heavy modules (torch, Fabric) are imported on first use of these names.
"""

from __future__ import annotations

from typing import Any

from faceparse.runs.config import Config, load_config
from faceparse.runs.stages import STAGES

__all__ = ["STAGES", "Config", "joint_step", "load_checkpoint", "load_config", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from faceparse.engine.loop import train

        return train
    if name == "load_checkpoint":
        from faceparse.runs.checkpoint import load_checkpoint

        return load_checkpoint
    if name == "joint_step":
        from faceparse.engine.joint import joint_step

        return joint_step
    raise AttributeError(f"module 'faceparse.engine' has no attribute {name!r}")
