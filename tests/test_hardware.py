"""The launcher's layout (torchrun, SLURM) → run.devices / run.num_nodes, and the CUDA defaults, decided
on CPU from fake environments and a fake CUDA device."""

from __future__ import annotations

import pytest
import torch

from faceparse.runs.hardware import cudnn_benchmark, detect_launcher, loader_options, topology

TORCHRUN_2x4 = {"TORCHELASTIC_RUN_ID": "job", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4", "RANK": "5"}
SLURM_3x2 = {"SLURM_NTASKS": "6", "SLURM_NNODES": "3", "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NAME": "fp"}


def test_no_launcher_means_one_device_on_one_node_unless_set():
    assert detect_launcher({}) is None
    assert topology(None, None, {}) == (1, 1)
    assert topology(2, None, {}) == (2, 1)  # Fabric's own launcher spawns run.devices processes
    assert topology(None, 3, {}) == (1, 3)


def test_torchrun_layout_fills_unset_keys():
    assert topology(None, None, TORCHRUN_2x4) == (4, 2)
    assert topology(4, 2, TORCHRUN_2x4) == (4, 2)
    assert topology(4, None, TORCHRUN_2x4) == (4, 2)


def test_slurm_layout_fills_unset_keys():
    assert topology(None, None, SLURM_3x2) == (2, 3)
    without_per_node = {k: v for k, v in SLURM_3x2.items() if k != "SLURM_NTASKS_PER_NODE"}  # srun -n 6 -N 3
    assert topology(None, None, without_per_node) == (2, 3)
    # an interactive allocation (Fabric does not treat it as a SLURM launch either): no launcher
    assert detect_launcher({**SLURM_3x2, "SLURM_JOB_NAME": "bash"}) is None
    # torchrun inside a SLURM job: torchrun's layout wins, as in Fabric
    assert topology(None, None, {**SLURM_3x2, **TORCHRUN_2x4}) == (4, 2)


@pytest.mark.parametrize(
    ("devices", "num_nodes", "environ", "key"),
    [
        (2, None, {"TORCHELASTIC_RUN_ID": "j", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1"}, "run.devices=2"),
        (None, 1, TORCHRUN_2x4, "run.num_nodes=1"),
        (4, None, SLURM_3x2, "run.devices=4"),
        (None, 2, SLURM_3x2, "run.num_nodes=2"),
    ],
)
def test_a_config_contradicting_the_launcher_is_refused_naming_the_key(devices, num_nodes, environ, key):
    with pytest.raises(ValueError, match=key) as info:
        topology(devices, num_nodes, environ)
    assert "per node" in str(info.value)


def test_uneven_or_incomplete_launcher_environments_are_refused():
    with pytest.raises(ValueError, match="same number of processes"):
        detect_launcher({"SLURM_NTASKS": "5", "SLURM_NNODES": "2"})
    with pytest.raises(ValueError, match="LOCAL_WORLD_SIZE is not set"):
        detect_launcher({"TORCHELASTIC_RUN_ID": "j", "WORLD_SIZE": "2"})


def test_detection_agrees_with_fabric(monkeypatch):
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for environ in ({}, TORCHRUN_2x4, SLURM_3x2, {**SLURM_3x2, "SLURM_JOB_NAME": "interactive"}):
        for name in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_JOB_NAME"):
            monkeypatch.delenv(name, raising=False)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        launcher = detect_launcher()
        fabric = (
            "torchrun" if TorchElasticEnvironment.detect() else "slurm" if SLURMEnvironment.detect() else None
        )
        assert (launcher.name if launcher else None) == fabric
        if launcher is not None:  # Fabric's own check of devices × num_nodes against the world size
            env = TorchElasticEnvironment() if fabric == "torchrun" else SLURMEnvironment()
            env.validate_settings(num_devices=launcher.per_node, num_nodes=launcher.num_nodes)


class FakeDevice:
    def __init__(self, type: str):
        self.type = type


def test_cuda_defaults_apply_on_cuda_only():
    cuda, cpu = FakeDevice("cuda"), torch.device("cpu")
    assert loader_options(cuda) == {"pin_memory": True}
    assert loader_options(cpu) == {"pin_memory": False}
    assert cudnn_benchmark(None, cuda) and not cudnn_benchmark(None, cpu)
    assert not cudnn_benchmark(False, cuda)  # run.cudnn_benchmark=false turns it off
