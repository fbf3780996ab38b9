"""run.compile: the networks train compiled on CPU (engine/compiled.py), and their checkpoints load into
plain networks."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from faceparse.engine.loop import train
from faceparse.engine.networks import network_specs
from faceparse.engine.sampling import mix_seed, seed_everything
from faceparse.runs import checkpoint as ckpt
from faceparse.runs.config import load_config, resolve
from faceparse.runs.stages import get_stage
from tiny import CLASSES, disc_dataset, tiny_overrides


# importing torch._inductor imports torch.utils.mkldnn, which still uses torch.jit.script_method
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
# dynamo reads .grad of the discriminator's input (a non-leaf: the generator's output) while tracing it
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
# the translator compiles in ~30 s cold on one core: in the default suite, so CI exercises run.compile;
# BiSeNet's cold compile takes ~2-3 min: slow
@pytest.mark.parametrize(
    "stage", [pytest.param("pretrain-rgb", marks=pytest.mark.slow), "pretrain-translator"]
)
def test_compiled_training_steps_and_clean_checkpoints(tmp_path: Path, stage: str):
    """Two compiled iterations and a validation: inductor really compiled graphs, the losses are finite,
    every network's weights moved, and the checkpoint's keys are the plain networks' (no ``_orig_mod.``)."""
    torch._dynamo.reset()
    root = disc_dataset(tmp_path / "data", n=6)
    overrides = [*tiny_overrides(root, tmp_path / "run"), "run.compile=true", "run.eval_every=2"]
    frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    last = train(None, stage, overrides=overrides)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > frames_before  # it did compile

    with open(last.parent.parent / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    losses = [float(v) for row in rows for k, v in row.items() if k.startswith("loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    assert (last.parent.parent / "val.csv").is_file()  # validation ran (eagerly) on the compiled networks

    cfg = resolve(load_config(None, overrides), CLASSES)
    specs = network_specs(cfg)
    roles = get_stage(stage).plan(cfg).roles
    seed_everything(mix_seed(cfg.run.seed, get_stage(stage).index))  # the stage's initialisation
    initial = {role: specs[role].build() for role in roles}
    for role in roles:
        saved = load_file(str(last / f"{role}.safetensors"))
        assert not [k for k in saved if "_orig_mod" in k]
        plain = specs[role].build()
        ckpt.load_weights(plain, last, role)  # strict: every key of the plain network
        start = initial[role].state_dict()
        assert any(not torch.equal(v, start[k]) for k, v in plain.state_dict().items()), role
