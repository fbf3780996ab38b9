"""Exact resume: an interrupted-then-resumed joint run ends with the same weights as an uninterrupted one."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from faceparse.engine import loop
from faceparse.engine.loop import TrainingStopped, train
from faceparse.engine.sampling import IterationBatches, Pool
from faceparse.runs import checkpoint as ckpt
from faceparse.utils.io import DataError
from tiny import ROLES, disc_dataset, fake_pretrained, joint_overrides, tiny_overrides


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    root = disc_dataset(base / "data", n=8, splits={"train": slice(0, 8)})
    return root, fake_pretrained(base / "pretrained", joint_overrides(root, base, base))


def weights(checkpoint: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {role: load_file(str(checkpoint / f"{role}.safetensors")) for role in ROLES}


def test_interrupted_then_resumed_equals_uninterrupted(setup, tmp_path, monkeypatch):
    root, pretrained = setup
    straight = train(None, "joint", overrides=joint_overrides(root, tmp_path / "a", pretrained))
    assert straight.name == "iter-0000002"

    real_step = loop.joint_step
    calls = {"n": 0}

    def step_then_sigterm(*args, **kwargs):
        terms = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # to ourselves mid-run, as a scheduler would
        return terms

    monkeypatch.setattr(loop, "joint_step", step_then_sigterm)
    with pytest.raises(TrainingStopped, match="interrupted at iteration 1"):
        train(None, "joint", overrides=joint_overrides(root, tmp_path / "b", pretrained))
    monkeypatch.undo()
    assert ckpt.latest_checkpoint(tmp_path / "b" / "joint").name == "iter-0000001"  # saved on the way out

    resumed = train(None, "joint", resume=True, overrides=joint_overrides(root, tmp_path / "b", pretrained))
    assert resumed.name == "iter-0000002"
    a, b = weights(straight), weights(resumed)
    for role in ROLES:
        assert a[role].keys() == b[role].keys()
        for key in a[role]:
            assert torch.equal(a[role][key], b[role][key]), f"{role}.{key}"
    state_a, state_b = ckpt.read_state(straight), ckpt.read_state(resumed)
    for role in ROLES:
        assert state_a["schedulers"][role]["last_epoch"] == state_b["schedulers"][role]["last_epoch"] == 2
    with (
        (tmp_path / "a" / "joint" / "metrics.csv").open() as fa,
        (tmp_path / "b" / "joint" / "metrics.csv").open() as fb,
    ):
        rows_a, rows_b = list(csv.DictReader(fa)), list(csv.DictReader(fb))
    assert [r["iteration"] for r in rows_b] == ["1", "2"]
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]


def test_batches_are_a_pure_function_of_seed_and_iteration():
    pools = [(Pool(list(range(5)), seed=3, stream=0), 2), (Pool(list(range(10, 17)), seed=3, stream=1), 2)]
    whole = list(IterationBatches(pools, seed=3, start=0, end=9))
    fresh = [(Pool(list(range(5)), seed=3, stream=0), 2), (Pool(list(range(10, 17)), seed=3, stream=1), 2)]
    tail = list(IterationBatches(fresh, seed=3, start=4, end=9))
    assert whole[4:] == tail
    first_epoch = [i for batch in whole[:2] for i, _ in batch[:2]] + [whole[2][0][0]]
    assert sorted(first_epoch) == [0, 1, 2, 3, 4]  # each epoch is a permutation of the pool
    ranks = [list(IterationBatches(pools, seed=3, start=0, end=9, rank=r, world=2)) for r in (0, 1)]
    for it in range(9):  # two ranks split each global batch, per pool, without overlap
        assert sorted(ranks[0][it] + ranks[1][it]) == sorted(whole[it])


def test_resume_refuses_a_changed_config_by_key_and_records_the_safe_changes(tiny_data, tmp_path):
    out = tmp_path / "run"
    stage = out / "pretrain-rgb"
    base = [*tiny_overrides(tiny_data, out, iterations=4), "run.ckpt_every=2"]
    train(None, "pretrain-rgb", overrides=base)
    shutil.rmtree(stage / "checkpoints" / "iter-0000004")  # as if it had stopped after iteration 2
    recorded = (stage / "config.yaml").read_text()

    changed = [*base, "parsers.lr=0.05", "parsers.momentum=0.5", "run.log_every=2"]
    with pytest.raises(DataError, match=r"iter-0000002/meta.json: --resume with a changed config") as info:
        train(None, "pretrain-rgb", resume=True, overrides=changed)
    message = str(info.value)
    assert "parsers.lr: 0.01 → 0.05" in message and "parsers.momentum: 0.9 → 0.5" in message
    assert "run.log_every" not in message.split("(only")[0]  # a safe change is not among the refused
    assert (stage / "config.yaml").read_text() == recorded  # nothing rewritten

    killed_save = stage / "checkpoints" / ".iter-0000003.x7y8z9ab.tmp"  # left by a save that was killed
    killed_save.mkdir()
    accepted = [*base, "run.log_every=2", "data.workers=1", "parsers.iterations=6"]  # and train longer
    last = train(None, "pretrain-rgb", resume=True, overrides=accepted)
    assert last.name == "iter-0000006" and not killed_save.exists()
    (record,) = json.loads((stage / "config_changes.json").read_text())
    assert record["resumed_from"] == "iter-0000002"
    assert record["changes"] == {
        "data.workers": {"from": 0, "to": 1},
        "parsers.iterations": {"from": 4, "to": 6},
        "run.log_every": {"from": 1, "to": 2},
    }
    assert ckpt.read_meta(last)["config"]["run"]["log_every"] == 2  # what the run now says it used
