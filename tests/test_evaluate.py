"""Checkpoint evaluation (faceparse.eval.run, `faceparse evaluate`): dataset-level protocol, known values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from faceparse.data.format import (
    read_depth,
    read_label,
    read_rgb,
    write_label,
)
from faceparse.data.normalize import depth_for_network, depth_from_network, rgb_for_generator, rgb_for_parser
from faceparse.data.transforms import build_transform
from faceparse.engine.networks import network_specs
from faceparse.eval.metrics import ConfusionMatrix, DepthL1, parsing_scores
from faceparse.eval.results import Comparison, Evaluation
from faceparse.eval.run import checkpoint_paths, evaluate_checkpoint, evaluate_networks, evaluate_report
from faceparse.labels import get_scheme
from faceparse.losses import main_logits
from faceparse.models import ParserOutput
from faceparse.runs.checkpoint import save_checkpoint
from faceparse.runs.config import load_config, resolve, to_dict
from faceparse.utils.io import DataError
from tiny import disc_dataset

NET_SIZE, LABEL_SIZE, CLASSES = 32, 40, 13
SCHEME = get_scheme("celebamask13")


def make_dataset(root: Path, n: int = 8) -> Path:
    """Discs at 40² (labels larger than the 32² network input), 3 ignored pixels per label, s001 and s004
    without depth; ``train`` holds every sample, ``test`` the first six."""
    splits = {"train": slice(0, n), "test": slice(0, 6)}
    return disc_dataset(root, n, LABEL_SIZE, missing_depth=(1, 4), ignored=3, splits=splits)


def make_run(root: Path, data: Path, seed: int = 0, arch: str = "bisenet") -> Path:
    """Untrained networks saved as the four stage checkpoints of a run folder (no training needed)."""
    overrides = [
        f"data.root={data}",
        f"data.size={NET_SIZE}",
        f"model.arch={arch}",
        "model.generator_ngf=4",
        "model.discriminator_ndf=4",
    ]
    cfg = resolve(load_config("base", overrides), CLASSES)
    specs = network_specs(cfg)
    torch.manual_seed(seed)
    modules = {role: spec.build() for role, spec in specs.items()}
    stages = {
        "pretrain-rgb": ("parser_rgb",),
        "pretrain-depth": ("parser_depth",),
        "pretrain-translator": ("generator", "discriminator"),
        "joint": tuple(modules),
    }
    for stage, roles in stages.items():
        if stage == "joint":  # the joint model differs from the pre-trained one
            for module in modules.values():
                with torch.no_grad():
                    for p in module.parameters():
                        p.add_(0.01 * torch.randn_like(p))
        meta = {
            "stage": stage,
            "config": to_dict(cfg),
            "scheme": {"name": SCHEME.name, **SCHEME.to_dict()},
            "networks": {role: specs[role].to_json() for role in roles},
        }
        save_checkpoint(root / stage / "checkpoints", 5, {r: modules[r] for r in roles}, {}, meta)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("evaldata"))


@pytest.fixture(scope="module")
def run(tmp_path_factory, dataset) -> Path:
    return make_run(tmp_path_factory.mktemp("evalrun"), dataset)


def direct_scores(
    run: Path, data: Path, ids: list[str] | None = None
) -> tuple[ConfusionMatrix, ConfusionMatrix, DepthL1]:
    """The protocol written out by hand, one image at a time (the six test samples, or ``ids``)."""
    from faceparse.runs.checkpoint import load_checkpoint

    nets, _ = load_checkpoint(run / "joint")
    resize = build_transform("bisenet", NET_SIZE, SCHEME, train=False)
    cm_rgb, cm_depth, l1 = ConfusionMatrix(CLASSES), ConfusionMatrix(CLASSES), DepthL1()
    for sid in ids or [f"s{i:03d}" for i in range(6)]:
        label = read_label(data / "label" / f"{sid}.png")
        depth_path = data / "depth" / f"{sid}.png"
        depth = read_depth(depth_path) if depth_path.is_file() else np.zeros(label.shape, np.float32)
        sample = {"rgb": read_rgb(data / "rgb" / f"{sid}.png"), "depth": depth, "label": label.copy()}
        small = resize({**sample, "has_depth": depth_path.is_file(), "id": sid}, np.random.default_rng(0))
        rgb = torch.from_numpy(small["rgb"]).permute(2, 0, 1)[None].float() / 255  # (1, 3, 32, 32)
        with torch.no_grad():
            logits = main_logits(nets["parser_rgb"](rgb_for_parser(rgb)), label.shape)
            cm_rgb.update(logits.argmax(1)[0].numpy(), label)
            if depth_path.is_file():
                depth_real = torch.from_numpy(np.ascontiguousarray(small["depth"]))[None, None]  # (1,1,32,32)
                logits = main_logits(nets["parser_depth"](depth_for_network(depth_real)), label.shape)
                cm_depth.update(logits.argmax(1)[0].numpy(), label)
                fake = depth_from_network(nets["generator"](rgb_for_generator(rgb))).clamp(0, 1)
                l1.update(fake, depth_real)
    return cm_rgb, cm_depth, l1


def test_checkpoint_scores_equal_a_direct_confusion_matrix(run, dataset):
    result = evaluate_checkpoint(run / "joint", dataset, "test", batch_size=4)
    cm_rgb, cm_depth, l1 = direct_scores(run, dataset)
    assert result.images == 6 and result.images_with_depth == 4
    assert np.array_equal(np.array(result.confusion_rgb), cm_rgb.compute())
    assert np.array_equal(np.array(result.confusion_depth), cm_depth.compute())
    # every non-ignored label pixel at label resolution (40²), not the 32² network size
    assert cm_rgb.total == 6 * (LABEL_SIZE**2 - 3)
    assert result.rgb is not None and result.depth is not None and result.translation is not None
    assert result.rgb.mean_f1 == pytest.approx(parsing_scores(cm_rgb, SCHEME).mean_f1, nan_ok=True)
    assert result.depth.per_class == pytest.approx(parsing_scores(cm_depth, SCHEME).per_class, nan_ok=True)
    assert result.translation.l1 == pytest.approx(l1.compute().l1, rel=1e-6)
    assert result.translation.l1_fg == pytest.approx(l1.compute().l1_fg, rel=1e-6)


def test_scores_by_group_are_each_groups_own_dataset_level_scores(run, dataset):
    """groups (e.g. light levels): each group's scores are those of evaluating its samples alone; one group
    holding every sample reproduces the overall scores."""
    ids = [f"s{i:03d}" for i in range(6)]
    split = evaluate_checkpoint(
        run / "joint", dataset, "test", batch_size=4, groups=dict.fromkeys(ids[:2], "dark")
    )
    assert split.by_group is not None and set(split.by_group) == {"dark"}
    dark = split.by_group["dark"]
    assert dark.images == 2 and dark.rgb is not None
    whole = evaluate_checkpoint(
        run / "joint", dataset, "test", batch_size=4, groups=dict.fromkeys(ids, "all")
    )
    assert whole.by_group is not None and whole.rgb is not None and whole.depth is not None
    everything = whole.by_group["all"]
    assert everything.rgb is not None and everything.depth is not None
    assert everything.rgb.per_class == pytest.approx(whole.rgb.per_class, nan_ok=True)
    assert everything.rgb.mean_f1 == pytest.approx(whole.rgb.mean_f1)
    assert everything.depth.per_class == pytest.approx(whole.depth.per_class, nan_ok=True)
    cm_rgb, _, _ = direct_scores(run, dataset, ids[:2])
    expected = parsing_scores(cm_rgb, SCHEME).per_class
    assert dark.rgb.per_class == pytest.approx(expected, nan_ok=True)
    ungrouped = evaluate_checkpoint(run / "joint", dataset, "test")
    assert ungrouped.by_group is None and "by_group" not in ungrouped.to_json()
    saved = json.loads(json.dumps(whole.to_json()))  # as a study caches it (eval-test.json) and reads it back
    assert saved["by_group"]["all"]["images"] == 6 and Evaluation.from_json(saved).to_json() == saved


def test_light_levels_from_synthetic_meta(tmp_path, dataset):
    from faceparse.data.format import light_levels
    from faceparse.data.synth import generate_dataset
    from faceparse.utils.io import DataError

    generate_dataset(tmp_path / "synth", 12, 32, seed=0, workers=1)
    levels = light_levels(tmp_path / "synth", "train")
    assert levels and set(levels.values()) <= {"dark", "normal", "bright"}
    meta = json.loads((tmp_path / "synth" / "meta" / f"{next(iter(levels))}.json").read_text())
    assert levels[next(iter(levels))] == meta["light"]["mode"]
    with pytest.raises(DataError, match="light level"):
        light_levels(dataset, "test")  # a dataset without per-sample light metadata


def test_result_keys_ranges_examples_and_determinism(run, dataset):
    first = evaluate_checkpoint(run / "joint", dataset, "test", batch_size=3, num_examples=3)
    again = evaluate_checkpoint(run / "joint", dataset, "test", batch_size=5, num_examples=3)
    saved = first.to_json()
    for key in ("rgb", "depth", "translation", "scheme", "size", "split", "sources", "stages", "iteration"):
        assert key in saved
    assert "examples" not in saved
    assert first.size == NET_SIZE and first.scheme == "celebamask13" and first.split == "test"
    assert first.stages == ["joint"] and first.arch == "bisenet" and first.data == str(dataset)
    for task in ("rgb", "depth"):
        scores, other = first.parsing(task), again.parsing(task)
        assert scores is not None and other is not None
        values = [v for v in scores.per_class.values() if not math.isnan(v)]
        assert all(0.0 <= v <= 100.0 for v in values) and 0.0 <= scores.mean_f1 <= 100.0
        assert scores.per_class == pytest.approx(other.per_class, nan_ok=True)  # batch-free
    assert first.translation is not None and again.translation is not None
    assert 0.0 <= first.translation.l1_fg <= 1.0
    assert first.translation.l1 == pytest.approx(again.translation.l1, rel=1e-9)
    examples = first.examples
    assert [e["id"] for e in examples] == ["s000", "s001", "s002"]
    assert examples[0]["label_rgb"].shape == (LABEL_SIZE, LABEL_SIZE)
    assert examples[0]["depth_fake"].shape == (NET_SIZE, NET_SIZE)
    assert "depth_gt" not in examples[1] and "label_depth" not in examples[1]  # s001 has no depth


class ConstantParser(nn.Module):
    """Predicts ``cls`` everywhere, at 1/4 resolution like EAGRNet (parsing and edge logits)."""

    def __init__(self, cls: int):
        super().__init__()
        self.cls = cls

    def forward(self, x: torch.Tensor) -> ParserOutput:
        b, _, h, w = x.shape
        logits = torch.zeros(b, CLASSES, h // 4, w // 4)
        logits[:, self.cls] = 1.0
        return ParserOutput(logits, edge=torch.zeros(b, 2, h // 4, w // 4))


class ConstantGenerator(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 1, *x.shape[2:])  # tanh 0 → nearness 0.5


def test_known_values_from_constant_networks(dataset):
    meta = {
        "path": "stand-in",
        "config": {"data": {"size": NET_SIZE}, "model": {"arch": "eagrnet", "num_classes": CLASSES}},
        "scheme": {"name": "celebamask13"},
        "networks": {
            "parser_rgb": {"normalization": "imagenet"},
            "parser_depth": {"normalization": "depth"},
            "generator": {"normalization": "symmetric"},
        },
    }
    nets = {
        "parser_rgb": ConstantParser(1),
        "parser_depth": ConstantParser(12),
        "generator": ConstantGenerator(),
    }
    result = evaluate_networks(nets, meta, dataset, "test", batch_size=4)
    assert result.checkpoint == "stand-in" and result.sources == {} and result.iteration is None
    rgb, depth, translation = result.rgb, result.depth, result.translation
    assert rgb is not None and depth is not None and translation is not None
    labels = np.stack([read_label(dataset / "label" / f"s{i:03d}.png") for i in range(6)])
    valid = labels != 255
    skin = (labels == 1).sum()
    # F_R says "skin" everywhere: F1(skin) = 2TP / (2TP + FP), FN = 0; nose/hair are present → 0; others NaN
    assert rgb.per_class["skin"] == pytest.approx(100 * 2 * skin / (2 * skin + valid.sum() - skin))
    assert rgb.per_class["nose"] == 0.0 and rgb.per_class["hair"] == 0.0
    assert math.isnan(rgb.per_class["l_eye"]) and result.to_json()["rgb"]["per_class"]["l_eye"] is None
    assert rgb.mean_f1 == pytest.approx(rgb.per_class["skin"] / 3)
    # F_D runs only on the 4 samples with depth
    with_depth = [i for i in range(6) if i not in (1, 4)]
    hair = (labels[with_depth] == 12).sum()
    assert depth.pixels == valid[with_depth].sum()
    expect = 100 * 2 * hair / (2 * hair + valid[with_depth].sum() - hair)
    assert depth.per_class["hair"] == pytest.approx(expect)
    # G says nearness 0.5 everywhere: L1 = mean |0.5 − depth| at the network size
    resize = build_transform("bisenet", NET_SIZE, SCHEME, train=False)
    depths = []
    for i in with_depth:
        sid = f"s{i:03d}"
        sample = {
            "rgb": read_rgb(dataset / "rgb" / f"{sid}.png"),
            "depth": read_depth(dataset / "depth" / f"{sid}.png"),
            "label": read_label(dataset / "label" / f"{sid}.png"),
            "has_depth": True,
            "id": sid,
        }
        depths.append(resize(sample, np.random.default_rng(0))["depth"])
    depths = np.stack(depths).astype(np.float64)
    assert translation.l1 == pytest.approx(np.abs(0.5 - depths).mean(), rel=1e-6)
    assert translation.l1_fg == pytest.approx(np.abs(0.5 - depths[depths > 0]).mean(), rel=1e-6)


def test_scheme_mismatch_and_duplicate_networks_are_clear_errors(run, dataset, tmp_path):
    other = make_dataset(tmp_path / "lapa", n=6)
    info = json.loads((other / "dataset.json").read_text())
    info["scheme"] = "lapa11"
    (other / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="lapa11"):
        evaluate_checkpoint(run / "joint", other, "test")
    with pytest.raises(DataError, match="give each network once"):
        evaluate_checkpoint([run / "joint", run / "pretrain-rgb"], dataset, "test")


def test_run_folder_means_joint_or_the_three_pretrained_stages(run):
    assert [p.parents[1].name for p in checkpoint_paths(run)] == ["joint"]
    stages = [p.parents[1].name for p in checkpoint_paths(run, pretrained=True)]
    assert stages == ["pretrain-rgb", "pretrain-depth", "pretrain-translator"]


def test_report_baseline_vs_joint_and_cli(run, dataset, tmp_path):
    result, tables = evaluate_report(run / "joint", dataset, "test", tmp_path / "lib", baseline=run)
    joint, base = result.joint, result.baseline
    assert base is not None and joint.rgb is not None and base.rgb is not None
    assert base.stages == ["pretrain-depth", "pretrain-rgb", "pretrain-translator"]
    assert joint.rgb.mean_f1 != base.rgb.mean_f1 or joint.confusion_rgb != base.confusion_rgb
    written = json.loads((tmp_path / "lib" / "evaluation.json").read_text())
    assert written == result.to_json() and Comparison.from_json(written).to_json() == written
    assert [t.rows[0][0] for t in tables] == ["BiSeNet_RGB", "BiSeNet_Depth", "Pix2Pix"]
    assert tables[0].rows[1][0] == "BiSeNet_RGB + our method"

    from faceparse.cli import app

    out = tmp_path / "cli"
    args = [
        "evaluate",
        "--checkpoint",
        str(run),
        "--data",
        str(dataset),
        "--baseline",
        str(run),
        "--out",
        str(out),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "BiSeNet_Depth + our method" in res.output
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["joint"]["rgb"]["mean_f1"] == pytest.approx(joint.rgb.mean_f1)
    assert "| BiSeNet_RGB + our method |" in (out / "evaluation.md").read_text()
    assert (out / "qualitative.png").stat().st_size > 1000

    missing = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "nope" in missing.output


def test_learning_curves_from_val_csv(tmp_path):
    """faceparse curves: val.csv (run.eval_every) → per-class curves PNG and a Markdown table."""
    from typer.testing import CliRunner

    from faceparse.cli import app

    stage = tmp_path / "run" / "pretrain-rgb"
    stage.mkdir(parents=True)
    (stage / "val.csv").write_text(
        "iteration,train_s,rgb_mean_f1,rgb_skin,rgb_l_eye\n10,60,20.5,50,0\n20,120,30.25,60,12.5\n"
    )
    md = tmp_path / "curves.md"
    res = CliRunner().invoke(
        app, ["curves", str(stage), "-o", str(tmp_path / "c.png"), "--markdown", str(md)]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c.png").stat().st_size > 1000
    lines = md.read_text().splitlines()
    assert lines[0].startswith("| run | iteration | minutes | mean | skin | l_brow")
    assert lines[3].startswith("| run/pretrain-rgb | 20 | 2.0 | 30.2 | 60.0 | nan | nan | 12.5 |")
    missing = CliRunner().invoke(app, ["curves", str(tmp_path), "-o", str(tmp_path / "d.png")])
    assert missing.exit_code != 0 and "run.eval_every" in missing.output


def test_learning_curves_of_renamed_csvs_by_iteration(tmp_path):
    """Copies named NAME-val.csv keep their own labels (not their shared folder's); --x iterations works;
    two inputs with one label and an unknown --x are refused with a message."""
    from typer.testing import CliRunner

    from faceparse.cli import app

    body = "iteration,train_s,rgb_mean_f1,rgb_skin\n500,20,14.4,75\n1000,40,26.7,83.7\n"
    for name in ("gpu-a-val.csv", "gpu-b-val.csv"):
        (tmp_path / name).write_text(body)
    md = tmp_path / "t.md"
    args = ["curves", str(tmp_path / "gpu-a-val.csv"), str(tmp_path / "gpu-b-val.csv")]
    res = CliRunner().invoke(
        app, [*args, "-o", str(tmp_path / "c.png"), "--x", "iterations", "--markdown", str(md)]
    )
    assert res.exit_code == 0, res.output
    text = md.read_text()
    assert "| gpu-a | 1000 | 0.7 | 26.7 | 83.7 |" in text and "| gpu-b | 500 |" in text
    twice = CliRunner().invoke(app, [*args[:2], args[1], "-o", str(tmp_path / "d.png")])
    assert twice.exit_code != 0 and "share the label" in twice.output
    bad_x = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "e.png"), "--x", "hours"])
    assert bad_x.exit_code != 0 and "--x must be" in bad_x.output


def test_evaluate_names_ids_outside_the_dataset_and_out_of_range_labels(run, tmp_path):
    """Issue 11: such an id made evaluate read (and draw) any image; an id past the scheme failed unnamed."""
    from faceparse.cli import app

    data = make_dataset(tmp_path / "data", n=3)
    disc_dataset(tmp_path / "outside", n=1, size=LABEL_SIZE)  # a valid sample outside the dataset
    split = data / "splits" / "test.txt"
    split.write_text("s000\n../../outside/rgb/s000\n")
    args = ["evaluate", "--checkpoint", str(run), "--data", str(data), "--out", str(tmp_path / "ev")]
    res = CliRunner().invoke(app, args)
    flat = "".join(res.output.split())  # rich wraps long lines
    assert res.exit_code == 2 and f"{split}:1idisnotaplainfilestem:line2:id'../../outside/rgb/s000'" in flat
    assert not (tmp_path / "ev" / "qualitative.png").exists()

    split.write_text("s000\ns001\n")
    label = read_label(data / "label" / "s001.png").copy()
    label[1, :4] = 20
    write_label(data / "label" / "s001.png", label)
    res = CliRunner().invoke(app, args)
    flat = "".join(res.output.split())
    assert res.exit_code == 2 and f"{data}/label/s001.png:labelidsoutofrange" in flat and "20(4px)" in flat
