"""Where a run executes: the launcher's process layout (torchrun, SLURM ``srun``) and the CUDA defaults.

Multi-node training is launched from outside (docs/distributed.md): ``torchrun`` or SLURM's ``srun``
starts one process per device on every node and tells each the layout through environment variables.
:func:`topology` reads that layout the way Lightning Fabric's cluster environments do (torchrun first,
then SLURM, the order Fabric tries them), fills ``run.devices`` (processes per node) and
``run.num_nodes`` where the config leaves them ``None``, and refuses a config that contradicts the
launcher, naming the key. Without a launcher, ``None`` means one device on one node.

The CUDA defaults (:func:`cudnn_benchmark`, :func:`loader_options`) are pure decisions on a device, so
they are tested here on CPU with a fake CUDA device.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Launcher:
    """The process layout a launcher set up: ``world_size`` = ``per_node`` × ``num_nodes``."""

    name: str  # "torchrun" or "slurm"
    world_size: int
    per_node: int  # processes (devices) per node
    num_nodes: int


def _int(environ: Mapping[str, str], name: str, launcher: str) -> int:
    try:
        return int(environ[name])
    except KeyError:
        raise ValueError(f"launched by {launcher} but {name} is not set in the environment") from None
    except ValueError:
        raise ValueError(f"launched by {launcher} but {name}={environ[name]!r} is not an integer") from None


def detect_launcher(environ: Mapping[str, str] | None = None) -> Launcher | None:
    """The launcher this process runs under (None: a plain process, or Fabric's own launcher).

    torchrun: detected as torch does (``TORCHELASTIC_RUN_ID``, Fabric's ``TorchElasticEnvironment``), from
    ``WORLD_SIZE`` and ``LOCAL_WORLD_SIZE``. SLURM: detected as Fabric's ``SLURMEnvironment`` does
    (``SLURM_NTASKS`` set, job name not ``bash``/``interactive``), from ``SLURM_NTASKS``, ``SLURM_NNODES``
    and ``SLURM_NTASKS_PER_NODE`` (``srun --ntasks-per-node``).
    """
    env = os.environ if environ is None else environ
    if env.get("TORCHELASTIC_RUN_ID") is not None:
        world, per_node = _int(env, "WORLD_SIZE", "torchrun"), _int(env, "LOCAL_WORLD_SIZE", "torchrun")
        name = "torchrun"
    elif "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        world, nodes = _int(env, "SLURM_NTASKS", "SLURM"), _int(env, "SLURM_NNODES", "SLURM")
        per_node = _int(env, "SLURM_NTASKS_PER_NODE", "SLURM") if "SLURM_NTASKS_PER_NODE" in env else 0
        per_node = per_node or world // max(nodes, 1)
        name = "slurm"
    else:
        return None
    if per_node < 1 or world % per_node:
        raise ValueError(
            f"{name} started {world} processes, {per_node} per node: every node must run the same number "
            "of processes (one per device)"
        )
    return Launcher(name, world, per_node, world // per_node)


def topology(
    devices: int | None, num_nodes: int | None, environ: Mapping[str, str] | None = None
) -> tuple[int, int]:
    """``(devices per node, num_nodes)`` for ``run.devices`` / ``run.num_nodes`` under this launcher.

    Unset (``None``) values come from the launcher, or are 1 without one; set values must agree with it.
    """
    launcher = detect_launcher(environ)
    if launcher is None:
        return devices or 1, num_nodes or 1
    where = (
        f"{launcher.name} started {launcher.world_size} processes: {launcher.per_node} per node on "
        f"{launcher.num_nodes} node(s)"
    )
    if devices is not None and devices != launcher.per_node:
        raise ValueError(
            f"run.devices={devices} but {where}. run.devices is the number of processes (devices) per node: "
            f"set run.devices={launcher.per_node} or leave it unset (null) to take it from the launcher"
        )
    if num_nodes is not None and num_nodes != launcher.num_nodes:
        raise ValueError(
            f"run.num_nodes={num_nodes} but {where}. Set run.num_nodes={launcher.num_nodes} or leave it "
            "unset (null) to take it from the launcher"
        )
    return launcher.per_node, launcher.num_nodes


def cudnn_benchmark(setting: bool | None, device: Any) -> bool:
    """Whether to set ``torch.backends.cudnn.benchmark`` (``run.cudnn_benchmark``; None: on for CUDA).

    Training shapes are fixed (one window size, one batch), so cuDNN's per-shape algorithm search pays
    once and every later step uses the fastest kernels; it makes convolutions non-deterministic in the
    last bits, like the other choices that change results only beyond numerics.
    """
    is_cuda = getattr(device, "type", str(device)) == "cuda"
    return is_cuda if setting is None else setting and is_cuda


def loader_options(device: Any) -> dict[str, Any]:
    """DataLoader keyword arguments for batches headed to ``device``: pinned host memory for CUDA.

    Pinned memory lets the host → device copy run asynchronously; Fabric's ``setup_dataloaders`` already
    moves each batch with ``non_blocking=True`` to a CUDA device (``lightning_fabric.utilities.apply_func.
    move_data_to_device``), so the loop does no copy of its own.
    """
    return {"pin_memory": getattr(device, "type", str(device)) == "cuda"}
