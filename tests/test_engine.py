"""The joint step (paper Eq. 4) on tiny networks, the NaN guard, and `faceparse train ... all` end to end."""

from __future__ import annotations

import copy
import csv
import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from faceparse.data.normalize import depth_for_network
from faceparse.engine import joint as joint_module
from faceparse.engine.joint import joint_step, rows
from faceparse.engine.networks import Networks, Optimizers
from faceparse.engine.pretrain import NonFiniteLoss, discriminator_step, plain_backward
from faceparse.losses import JointWeights, parser_loss
from faceparse.models import ParserOutput, build_model
from faceparse.runs.config import Config, joint_weights
from faceparse.runs.stages import JOINT
from faceparse.utils.io import DataError
from tiny import CLASSES, SIZE, disc_dataset, tiny_networks, tiny_overrides

PAPER = joint_weights(Config())  # §4.2: λ = 1, 1, 0.5, 0.5, 1 and λ_L1 = 100


def optimizers_for(nets: Networks) -> Optimizers:
    sgd = {"lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4}
    return Optimizers(
        parser_rgb=torch.optim.SGD(nets.parser_rgb.parameters(), **sgd),
        parser_depth=torch.optim.SGD(nets.parser_depth.parameters(), **sgd),
        generator=torch.optim.Adam(nets.generator.parameters(), lr=1e-4, betas=(0.5, 0.999)),
        discriminator=torch.optim.Adam(nets.discriminator.parameters(), lr=1e-4, betas=(0.5, 0.999)),
    )


def a_batch(b: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, CLASSES, (b, SIZE, SIZE), generator=g)
    return {
        "rgb": torch.rand(b, 3, SIZE, SIZE, generator=g),
        "depth": torch.rand(b, 1, SIZE, SIZE, generator=g),
        "label": label,
    }


def snapshot(nets: Networks) -> dict[str, list[torch.Tensor]]:
    return {role: [p.detach().clone() for p in m.parameters()] for role, m in nets.items()}


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


@pytest.fixture(scope="module")
def nets_and_batch():
    return tiny_networks(), a_batch()


def run_step(nets: Networks, weights: JointWeights, batch: dict) -> tuple[Networks, dict]:
    nets = copy.deepcopy(nets)
    torch.manual_seed(0)  # the generator's dropout
    terms = joint_step(nets, optimizers_for(nets), batch, weights, parser_loss("bisenet"), plain_backward)
    return nets, terms


def test_joint_step_updates_every_network(nets_and_batch):
    nets, batch = nets_and_batch
    before = snapshot(nets)
    # five distinct λ: a swapped pair (say λ3 ↔ λ4) changes the total and fails the mirror below
    w = JointWeights(lambda1=0.7, lambda2=1.3, lambda3=0.4, lambda4=0.9, lambda5=1.7, lambda_l1=100.0)
    updated, terms = run_step(nets, w, batch)
    for role, module in updated.items():
        assert changed(before[role], module), f"{role} was not updated"
    assert set(terms) >= {
        "loss",
        "loss_ml",
        "loss_e2e",
        "loss_cls_rgb",
        "loss_cls_depth",
        "loss_dt",
        "loss_d",
    }
    total = (
        w.lambda1 * terms["loss_ml"]
        + w.lambda2 * terms["loss_e2e"]
        + w.lambda3 * terms["loss_cls_rgb"]
        + w.lambda4 * terms["loss_cls_depth"]
        + w.lambda5 * terms["loss_dt"]
    )
    assert torch.allclose(terms["loss"], total)


def test_e2e_gradients_reach_the_generator_and_zero_weights_remove_terms(nets_and_batch):
    nets, batch = nets_and_batch
    only_e2e = JointWeights(lambda1=0, lambda2=1, lambda3=0, lambda4=0, lambda5=0, lambda_l1=100.0)
    updated, _ = run_step(nets, only_e2e, batch)
    grads_g = [p.grad for p in updated.generator.parameters()]
    assert all(g is not None for g in grads_g) and sum(float(g.abs().sum()) for g in grads_g) > 0  # no detach
    assert all(float(p.grad.abs().sum()) == 0 for p in updated.parser_rgb.parameters())  # F_R only in λ1, λ3


def test_mutual_learning_trains_both_parsers(nets_and_batch):
    nets, batch = nets_and_batch
    only_ml = JointWeights(lambda1=1, lambda2=0, lambda3=0, lambda4=0, lambda5=0, lambda_l1=100.0)
    updated, _ = run_step(nets, only_ml, batch)
    for role in ("parser_rgb", "parser_depth"):  # bidirectional (paper §3.2): neither side is detached
        assert sum(float(p.grad.abs().sum()) for p in getattr(updated, role).parameters()) > 0, role


def test_a_zero_weight_removes_the_terms_contribution(nets_and_batch, monkeypatch):
    nets, batch = nets_and_batch
    no_ml = dataclasses.replace(PAPER, lambda1=0.0)
    reference, _ = run_step(nets, no_ml, batch)
    real = joint_module.mutual_learning_loss
    monkeypatch.setattr(joint_module, "mutual_learning_loss", lambda a, b, *rest: 1e3 * real(a, b) + 5.0)
    perturbed, _ = run_step(nets, no_ml, batch)
    for (role, a), (_, b) in zip(reference.items(), perturbed.items(), strict=True):
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(pa, pb), role


def test_discriminator_step_uses_detached_fakes(nets_and_batch):
    nets, batch = nets_and_batch
    nets = copy.deepcopy(nets)
    before = snapshot(nets)
    optimizer_d = torch.optim.Adam(nets.discriminator.parameters(), lr=1e-3)
    rgb = batch["rgb"][:2] * 2 - 1
    depth_fake = nets.generator(rgb)  # attached to G's graph
    discriminator_step(
        nets.discriminator,
        optimizer_d,
        rgb,
        depth_for_network(batch["depth"][:2]),
        depth_fake,
        plain_backward,
    )
    assert all(p.grad is None for p in nets.generator.parameters())
    assert not changed(before["generator"], nets.generator)
    assert changed(before["discriminator"], nets.discriminator)


def test_rows_slices_every_tensor_of_an_output_and_keeps_its_structure():
    batch = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)  # row i holds the value i
    bisenet_like = ParserOutput(batch, (batch + 10, batch + 20))
    sliced = rows(bisenet_like, 1, 3)
    assert isinstance(sliced, ParserOutput) and sliced.edge is None and len(sliced.aux) == 2
    assert [t[:, 0, 0, 0].tolist() for t in sliced.tensors()] == [[1, 2], [11, 12], [21, 22]]
    eagrnet_like = rows(ParserOutput(batch, edge=batch[:, :2] + 30), 2, 4)
    assert isinstance(eagrnet_like, ParserOutput) and eagrnet_like.aux == ()
    assert eagrnet_like.edge is not None and eagrnet_like.edge[:, 0, 0, 0].tolist() == [32, 33]
    # a foreign model's bare tensor or plain sequence becomes a tuple of sliced tensors
    (alone,) = rows(batch, 0, 2)
    assert alone[:, 0, 0, 0].tolist() == [0, 1]
    assert [t.shape[0] for t in rows([batch, batch], 0, 3)] == [3, 3]


def test_joint_batch_composition(nets_and_batch, monkeypatch):
    """F_D sees [ground-truth depth of the first half | G's depth for the second half]; F_R sees all B."""
    nets, batch = nets_and_batch
    nets = copy.deepcopy(nets)
    seen = {}

    def keep(name, use_output=False):
        def hook(module, args, output):
            seen[name] = (output if use_output else args[0]).detach()

        return hook

    nets.parser_depth.register_forward_hook(keep("depth"))
    nets.parser_rgb.register_forward_hook(keep("rgb"))
    nets.generator.register_forward_hook(keep("fake", use_output=True))
    joint_step(nets, optimizers_for(nets), batch, PAPER, parser_loss("bisenet"), plain_backward)
    assert seen["rgb"].shape[0] == 4 and seen["depth"].shape == (4, 1, SIZE, SIZE)
    assert torch.equal(seen["depth"][:2], depth_for_network(batch["depth"][:2]))
    assert torch.equal(seen["depth"][2:], seen["fake"][2:])


def test_depth_bn_separate_runs_the_depth_parser_on_each_half(nets_and_batch):
    """joint.depth_bn=separate: F_D runs twice (real half, generated half), so batch norm never mixes them;
    the losses then differ from the mixed pass (the BN statistics differ), and every network still updates."""
    nets, batch = nets_and_batch
    nets = copy.deepcopy(nets)
    sizes = []
    nets.parser_depth.register_forward_hook(lambda module, args, output: sizes.append(args[0].shape[0]))
    torch.manual_seed(0)
    opts = optimizers_for(nets)
    before = snapshot(nets)
    loss = parser_loss("bisenet")
    separate = joint_step(nets, opts, batch, PAPER, loss, plain_backward, depth_bn="separate")
    assert sizes == [2, 2]
    assert all(changed(before[role], module) for role, module in nets.items())
    _, mixed = run_step(nets_and_batch[0], PAPER, batch)
    assert not torch.isclose(separate["loss_cls_depth"], mixed["loss_cls_depth"])


def test_ml_warmup_ramps_lambda1_from_zero_and_resumes(monkeypatch):
    """joint.ml_warmup=4: λ1 = 0.25, 0.5, 0.75, 1, 1, ... by iteration; a stage resumed at iteration 2
    continues the ramp at 0.75. The other λ are untouched."""
    import faceparse.engine.loop as loop
    from faceparse.runs.config import load_config

    seen = []
    monkeypatch.setattr(loop, "joint_step", lambda *args: seen.append((args[3], args[6], args[7])) or {})
    cfg = load_config(None, ["joint.ml_warmup=4", "joint.lambda1=2", "joint.ml_loss=kl"])
    weights = dataclasses.replace(PAPER, lambda1=2.0)
    context = loop.StepContext(Networks(), Optimizers(), parser_loss("bisenet"), weights, cfg, plain_backward)
    step = loop.STEPS[JOINT](context)
    for _ in range(5):
        step({})
    assert [w.lambda1 for w, _, _ in seen] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0])
    assert {w.lambda3 for w, _, _ in seen} == {0.5} and seen[0][1].loss == "kl" and seen[0][2] == "mixed"
    seen.clear()
    resumed = loop.STEPS[JOINT](dataclasses.replace(context, start=2))
    resumed({})
    resumed({})
    assert [w.lambda1 for w, _, _ in seen] == pytest.approx([1.5, 2.0])
    with pytest.raises(DataError, match="joint.depth_bn"):
        load_config(None, ["joint.depth_bn=split"])
    with pytest.raises(DataError, match="joint.ml_direction"):
        load_config(None, ["joint.ml_direction=one-way"])


def test_a_non_finite_term_stops_before_any_update(nets_and_batch, monkeypatch):
    nets, batch = nets_and_batch
    nets = copy.deepcopy(nets)
    before = snapshot(nets)
    monkeypatch.setattr(joint_module, "mutual_learning_loss", lambda *args: torch.tensor(float("nan")))
    with pytest.raises(NonFiniteLoss, match="loss_ml"):
        joint_step(nets, optimizers_for(nets), batch, PAPER, parser_loss("bisenet"), plain_backward)
    for role in ("parser_rgb", "parser_depth", "generator"):
        assert not changed(before[role], getattr(nets, role)), role


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_nan_guard_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    import faceparse.losses
    from faceparse.engine import train
    from faceparse.engine.loop import TrainingStopped
    from faceparse.runs.checkpoint import latest_checkpoint

    real = faceparse.losses.parser_loss("bisenet")
    calls = {"n": 0}

    def exploding(output, label):
        calls["n"] += 1
        loss = real(output, label)
        return loss * float("inf") if calls["n"] == 3 else loss

    monkeypatch.setattr(faceparse.losses, "parser_loss", lambda arch: exploding)
    overrides = [*tiny_overrides(tiny_data, tmp_path / "run"), "parsers.iterations=4", "run.ckpt_every=2"]
    with pytest.raises(TrainingStopped, match=r"'loss_cls_rgb' became .* at iteration 3") as info:
        train(None, "pretrain-rgb", overrides=overrides)
    assert "iter-0000002" in str(info.value)
    assert latest_checkpoint(tmp_path / "run" / "pretrain-rgb").name == "iter-0000002"


def test_train_all_end_to_end_through_the_cli(tiny_data, tmp_path):
    from faceparse.cli import app
    from faceparse.engine import load_checkpoint

    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["train", "all", *tiny_overrides(tiny_data, out, iterations=1)])
    assert result.exit_code == 0, result.output
    for stage in ("pretrain-rgb", "pretrain-depth", "pretrain-translator", "joint"):
        assert (out / stage / "config.yaml").is_file()
        rows = read_csv(out / stage / "metrics.csv")
        assert [int(r["iteration"]) for r in rows] == [1]
    joint_rows = read_csv(out / "joint" / "metrics.csv")
    assert {"loss_ml", "loss_e2e", "loss_cls_rgb", "loss_cls_depth", "loss_dt", "loss_d"} <= set(
        joint_rows[0]
    )

    networks, meta = load_checkpoint(out)
    assert meta["stage"] == "joint" and meta["iteration"] == 1
    assert set(networks) == {"parser_rgb", "parser_depth", "generator", "discriminator"}
    assert meta["scheme"]["name"] == "celebamask13" and meta["config"]["model"]["num_classes"] == CLASSES
    assert meta["networks"]["parser_rgb"]["normalization"] == "imagenet"
    assert meta["networks"]["parser_depth"]["normalization"] == "depth"
    assert set(meta["init_from"]) == {"parser_rgb", "parser_depth", "generator", "discriminator"}
    logits = networks["parser_depth"](torch.zeros(1, 1, SIZE, SIZE)).logits
    assert logits.shape == (1, CLASSES, SIZE, SIZE)

    again = runner.invoke(app, ["train", "joint", *tiny_overrides(tiny_data, out, iterations=1)])
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = runner.invoke(app, ["train", "all", "--resume", *tiny_overrides(tiny_data, out, iterations=1)])
    assert resumed.exit_code == 0 and "already complete" in resumed.output


@pytest.mark.slow
def test_joint_step_with_eagrnet_parsers():
    """EAGRNet's outputs (parsing and edge logits) at 1/4 resolution: slicing, L_ML on parsing logits, all
    updated."""
    torch.manual_seed(0)
    size = 64
    nets = Networks(
        parser_rgb=build_model("eagrnet", num_classes=CLASSES, in_channels=3),
        parser_depth=build_model("eagrnet", num_classes=CLASSES, in_channels=1),
        generator=build_model("unet_generator", num_downs=6, ngf=4),
        discriminator=build_model("pixel_discriminator", in_channels=4, ndf=4),
    )
    before = snapshot(nets)
    g = torch.Generator().manual_seed(0)
    batch = {
        "rgb": torch.rand(4, 3, size, size, generator=g),
        "depth": torch.rand(4, 1, size, size, generator=g),
        "label": torch.randint(0, CLASSES, (4, size, size), generator=g),
    }
    terms = joint_step(nets, optimizers_for(nets), batch, PAPER, parser_loss("eagrnet"), plain_backward)
    assert all(torch.isfinite(v) for v in terms.values())
    for role, module in nets.items():
        assert changed(before[role], module), role


@pytest.mark.slow
def test_bf16_mixed_precision_runs(tiny_data, tmp_path):
    from faceparse.engine import train

    overrides = [*tiny_overrides(tiny_data, tmp_path / "run", iterations=2), "run.precision=bf16-mixed"]
    last = train(None, "pretrain-translator", overrides=overrides)
    assert last.name == "iter-0000002"


def test_validation_during_training_writes_val_csv_and_resumes(tiny_data, tmp_path):
    """run.eval_every: per-class val F1 and the stage's training seconds in <stage>/val.csv; a resumed run
    keeps its clock and its rows, as one uninterrupted run would."""
    from faceparse.engine import train
    from faceparse.runs.checkpoint import latest_checkpoint, read_state

    out = tmp_path / "run"
    extra = ["run.eval_every=2", "run.ckpt_every=2"]
    overrides = [*tiny_overrides(tiny_data, out, iterations=4), *extra]
    train(None, "pretrain-rgb", overrides=[*tiny_overrides(tiny_data, out, iterations=2), *extra])
    rows = read_csv(out / "pretrain-rgb" / "val.csv")
    assert [int(r["iteration"]) for r in rows] == [2]
    first_clock = float(rows[0]["train_s"])
    assert first_clock > 0 and {"rgb_mean_f1", "rgb_skin", "rgb_hair", "rgb_l_eye"} <= set(rows[0])
    assert 0.0 <= float(rows[0]["rgb_mean_f1"]) <= 100.0
    state = read_state(latest_checkpoint(out / "pretrain-rgb"))
    assert state["train_seconds"] >= float(read_csv(out / "pretrain-rgb" / "metrics.csv")[-1]["train_s"])

    train(None, "pretrain-rgb", resume=True, overrides=overrides)  # now to 4 iterations
    rows = read_csv(out / "pretrain-rgb" / "val.csv")
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    assert float(rows[1]["train_s"]) > first_clock  # the clock continued, it did not restart

    train(None, "pretrain-translator", overrides=overrides)
    rows = read_csv(out / "pretrain-translator" / "val.csv")
    assert {"translation_l1", "translation_l1_fg"} <= set(rows[0]) and "rgb_mean_f1" not in rows[0]


def test_channels_last_and_authors_optimiser_are_saved_resolved(tiny_data, tmp_path):
    from faceparse.engine import train
    from faceparse.runs.checkpoint import latest_checkpoint, read_state

    out = tmp_path / "run"
    overrides = [
        *tiny_overrides(tiny_data, out, iterations=1),
        "parsers.warmup_iters=3",
        "run.channels_last=true",
    ]
    train(None, "pretrain-rgb", overrides=overrides)
    saved = (out / "pretrain-rgb" / "config.yaml").read_text()
    assert "precision: auto" not in saved and "channels_last: true" in saved
    assert "head_lr_mult: 10.0" in saved and "decay_norms: false" in saved
    state = read_state(latest_checkpoint(out / "pretrain-rgb"))
    groups = state["optimizers"]["parser_rgb"]["param_groups"]
    assert len(groups) == 4 and {g["name"] for g in groups} == {"wd", "no_wd", "head_wd", "head_no_wd"}
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["head_wd"] == pytest.approx(10 * lrs["wd"])  # warm-up scales every group alike


def test_data_crop_trains_on_windows_and_validates_on_whole_images(tmp_path):
    from faceparse.engine import train
    from faceparse.engine.loop import _open_dataset
    from faceparse.engine.sampling import SeededItems
    from faceparse.runs.config import load_config

    root = disc_dataset(tmp_path / "data64", size=64)
    out = tmp_path / "run"
    overrides = [*tiny_overrides(root, out, iterations=2), "data.size=64", "data.crop=32", "run.eval_every=2"]
    items = SeededItems(_open_dataset(load_config(None, overrides)))
    for seed in range(4):
        sample = items[(0, seed)]
        assert sample["rgb"].shape[-2:] == (32, 32) and sample["label"].shape == (32, 32)
    train(None, "pretrain-rgb", overrides=overrides)
    saved = (out / "pretrain-rgb" / "config.yaml").read_text()
    assert "crop: 32" in saved and "size: 64" in saved
    assert len(read_csv(out / "pretrain-rgb" / "val.csv")) == 1  # validation ran on the 64² whole images


def test_depth_parser_can_have_its_own_length(tiny_data, tmp_path):
    from faceparse.engine import train

    out = tmp_path / "run"
    overrides = [*tiny_overrides(tiny_data, out, iterations=2), "parsers.depth_iterations=1"]
    assert train(None, "pretrain-depth", overrides=overrides).name == "iter-0000001"
    assert train(None, "pretrain-rgb", overrides=overrides).name == "iter-0000002"


def test_training_reports_progress_through_the_factory_and_draws_nothing_itself(tiny_data, tmp_path, capsys):
    from contextlib import contextmanager

    from faceparse.engine import train

    calls: dict[str, list] = {}

    @contextmanager
    def recorder(description: str):
        calls[description] = []
        yield lambda done, total, info: calls[description].append((done, total, info))

    overrides = [*tiny_overrides(tiny_data, tmp_path / "run", iterations=3), "run.progress=true"]
    train(None, "pretrain-rgb", overrides=overrides, progress=recorder)
    seen = calls["pretrain-rgb"]
    assert [(d, t) for d, t, _ in seen] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert seen[0][2] == "" and seen[-1][2].startswith("cls_rgb=")  # the loss terms of the step
    train(None, "pretrain-depth", overrides=overrides)  # no factory: nothing drawn, even with run.progress
    assert "pretrain-depth" not in capsys.readouterr().err


def test_train_names_a_label_with_out_of_range_ids(tmp_path):
    """Issue 11: an id past the scheme failed in the loss (``Target 20 is out of bounds``), naming no
    file. It is a DataError naming the label map, raised in a loader worker, and still a clean exit 2."""
    from faceparse.cli import app
    from faceparse.data.format import read_label, write_label

    root = disc_dataset(tmp_path / "data", n=4)
    label = read_label(root / "label" / "s001.png").copy()
    label[2, 2] = 20
    write_label(root / "label" / "s001.png", label)
    overrides = [*tiny_overrides(root, tmp_path / "run", iterations=1), "data.workers=1", "data.augment=none"]
    result = CliRunner().invoke(app, ["train", "pretrain-rgb", *overrides])
    flat = "".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2, result.output
    assert (
        f"{root}/label/s001.png:labelidsoutofrange" in flat and "20(1px)" in flat and "Traceback" not in flat
    )


@pytest.mark.parametrize("workers", [0, 1])  # in the main process, and across a DataLoader worker
def test_a_bad_file_met_mid_training_saves_a_checkpoint_then_stops_naming_it(tmp_path, monkeypatch, workers):
    from faceparse.data.dataset import FaceParsingDataset
    from faceparse.engine import train
    from faceparse.runs.checkpoint import latest_checkpoint

    root = disc_dataset(tmp_path / "data", n=8, splits={"train": slice(0, 8)})
    overrides = [*tiny_overrides(root, tmp_path / "run", iterations=6), f"data.workers={workers}"]
    straight = train(None, "pretrain-rgb", overrides=[*overrides[:-1], f"run.out={tmp_path / 'straight'}"])

    real_load = FaceParsingDataset.load
    loads = {"n": 0}  # counted in the process that loads (the worker's own copy when workers=1)

    def load_then_fail(self, index):
        loads["n"] += 1
        if loads["n"] == 7:  # the 7th sample: batch 3 of 2 samples each, after iterations 1-3 trained
            raise DataError(root / "rgb" / "s005.png", "truncated PNG (no IEND chunk at the end of the file)")
        return real_load(self, index)

    monkeypatch.setattr(FaceParsingDataset, "load", load_then_fail)
    with pytest.raises(
        DataError, match=r"s005.png: truncated PNG .*stopped at iteration 3, checkpoint saved"
    ):
        train(None, "pretrain-rgb", overrides=overrides)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path / "run" / "pretrain-rgb").name == "iter-0000003"

    resumed = train(None, "pretrain-rgb", resume=True, overrides=overrides)  # the file was "fixed"
    assert resumed.name == "iter-0000006"
    a, b = (load_file(str(path / "parser_rgb.safetensors")) for path in (straight, resumed))
    assert all(torch.equal(a[key], b[key]) for key in a)  # nothing lost, nothing trained twice
