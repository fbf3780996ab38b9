"""DDP on CPU: two gloo processes under torchrun run joint steps and keep identical weights."""

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


@pytest.mark.slow
@pytest.mark.ddp
def test_two_ranks_stay_in_sync(tmp_path: Path):
    from tiny import disc_dataset, fake_pretrained, joint_overrides

    root = disc_dataset(tmp_path / "data", n=8, splits={"train": slice(0, 8)})
    pretrained = fake_pretrained(tmp_path / "pretrained", joint_overrides(root, tmp_path, tmp_path))
    args = [
        *joint_overrides(root, tmp_path / "run", pretrained),
        "run.devices=2",
        "run.strategy=ddp",
        "joint.iterations=3",
    ]
    script = tmp_path / "ddp_joint.py"
    script.write_text(SCRIPT)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(script),
        str(tmp_path),
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == 3
    for step0, step1 in zip(ranks[0]["steps"], ranks[1]["steps"], strict=True):
        assert step0["digest"] == step1["digest"]  # every parameter of all four networks, after every step
    # the ranks saw different halves of each global batch, so their local losses differ
    assert any(s0["loss"] != s1["loss"] for s0, s1 in zip(ranks[0]["steps"], ranks[1]["steps"], strict=True))
    assert (tmp_path / "run" / "joint" / "checkpoints" / "iter-0000003").is_dir()  # written once, by rank 0
