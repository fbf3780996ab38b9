"""DDP on CPU: two gloo processes under torchrun run joint steps and keep identical weights, on one node
(two processes) and on two "nodes" (two torchrun launchers of one process each, on localhost)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path

    import torch

    from faceparse.engine import loop
    from faceparse.engine.pretrain import unwrap

    out = Path(sys.argv[1])
    overrides = sys.argv[2:]
    real_step = loop.joint_step
    record = []

    def step_and_hash(nets, *args, **kwargs):
        terms = real_step(nets, *args, **kwargs)
        digest = hashlib.sha256()
        for _, module in nets.items():
            for tensor in unwrap(module).parameters():  # BN running stats are rank-local till next forward
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        record.append({"digest": digest.hexdigest(), "loss": float(terms["loss"])})
        return terms

    loop.joint_step = step_and_hash
    loop.train(None, "joint", overrides=overrides)
    rank = torch.distributed.get_rank()
    world = torch.distributed.get_world_size()
    (out / f"rank{rank}.json").write_text(json.dumps({"steps": record, "world": world}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _joint_run(tmp_path: Path) -> tuple[Path, list[str]]:
    """A tiny dataset, fake pre-trained checkpoints, and the overrides of a 3-iteration joint run."""
    from tiny import disc_dataset, fake_pretrained, joint_overrides

    root = disc_dataset(tmp_path / "data", n=8, splits={"train": slice(0, 8)})
    pretrained = fake_pretrained(tmp_path / "pretrained", joint_overrides(root, tmp_path, tmp_path))
    script = tmp_path / "ddp_joint.py"
    script.write_text(SCRIPT)
    return script, [*joint_overrides(root, tmp_path / "run", pretrained), "joint.iterations=3"]


def _torchrun(launcher: list[str], script: Path, tmp_path: Path, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launcher, str(script), str(tmp_path), *args]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _check_in_sync(tmp_path: Path) -> None:
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == 3
    for step0, step1 in zip(ranks[0]["steps"], ranks[1]["steps"], strict=True):
        assert step0["digest"] == step1["digest"]  # every parameter of all four networks, after every step
    # the ranks saw different halves of each global batch, so their local losses differ
    assert any(s0["loss"] != s1["loss"] for s0, s1 in zip(ranks[0]["steps"], ranks[1]["steps"], strict=True))


@pytest.mark.slow
@pytest.mark.ddp
def test_two_ranks_stay_in_sync(tmp_path: Path):
    script, args = _joint_run(tmp_path)
    launcher = ["--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    command = _torchrun(launcher, script, tmp_path, [*args, "run.devices=2", "run.strategy=ddp"])
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _check_in_sync(tmp_path)
    assert (tmp_path / "run" / "joint" / "checkpoints" / "iter-0000003").is_dir()  # written once, by rank 0


@pytest.mark.slow
@pytest.mark.ddp
def test_two_nodes_stay_in_sync(tmp_path: Path):
    """Two torchrun launchers (``--nnodes 2 --node_rank 0|1``), one process each: run.devices and
    run.num_nodes come from the launcher (left unset), and only global rank 0 writes. Node 1 gets its own
    run.out, standing in for another machine's disk: a rank that wrote as "rank 0 of its node" (local
    rank 0) would leave files there."""
    script, args = _joint_run(tmp_path)
    port = str(_free_port())
    nodes = []
    for node in (0, 1):
        launcher = ["--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(node)]
        launcher += ["--master_addr", "127.0.0.1", "--master_port", port]
        node_args = [*args, f"run.out={tmp_path / f'run-node{node}'}"]
        command = _torchrun(launcher, script, tmp_path, node_args)
        nodes.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
        )
    outputs = [node.communicate(timeout=900)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    _check_in_sync(tmp_path)
    stage = tmp_path / "run-node0" / "joint"
    assert (stage / "checkpoints" / "iter-0000003").is_dir()
    assert len((stage / "metrics.csv").read_text().splitlines()) == 1 + 3  # a header and 3 rows, once
    resolved = (stage / "config.yaml").read_text()
    assert "devices: 1\n" in resolved and "num_nodes: 2\n" in resolved  # from the launcher
    assert not (tmp_path / "run-node1").exists()  # global rank 1, local rank 0 of its node, wrote nothing
