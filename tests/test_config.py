"""Configs: paper defaults, presets as small overrides, dotted overrides, errors naming the key, saving."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceparse.runs.config import (
    CONFIG_DIR,
    Config,
    find_config,
    from_dict,
    load_config,
    resolve,
    resume_safe,
    to_dict,
    to_yaml,
)
from faceparse.utils.io import DataError

PRESETS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def test_defaults_are_the_papers_hyperparameters():
    cfg = resolve(load_config(), num_classes=13)
    assert cfg.parsers.optimizer == "sgd" and cfg.parsers.lr == 1e-2  # BiSeNet, paper §4.2
    assert (cfg.parsers.momentum, cfg.parsers.weight_decay, cfg.parsers.poly_power) == (0.9, 5e-4, 0.9)
    assert (cfg.parsers.iterations, cfg.parsers.batch_size) == (100_000, 8)
    assert cfg.translator.optimizer == "adam" and cfg.translator.lr == 1e-3
    assert cfg.translator.betas == [0.5, 0.999]
    assert (cfg.translator.iterations, cfg.translator.batch_size) == (200_000, 1)
    assert cfg.lambda_l1 == 100.0
    j = cfg.joint
    assert (j.lambda1, j.lambda2, j.lambda3, j.lambda4, j.lambda5) == (1.0, 1.0, 0.5, 0.5, 1.0)
    assert j.lr_scale == 0.1 and j.batch_size == 8
    assert cfg.data.depth_fraction == 0.1 and cfg.model.discriminator == "pixel"
    assert cfg.model.num_classes == 13 and cfg.model.generator_num_downs == 8


def test_eagrnet_resolves_its_own_learning_rate():
    cfg = resolve(load_config(None, ["model.arch=eagrnet"]), num_classes=11)
    assert cfg.parsers.lr == 1e-3
    cfg = resolve(load_config(None, ["model.arch=eagrnet", "parsers.lr=0.05"]), num_classes=11)
    assert cfg.parsers.lr == 0.05  # an explicit value wins


def test_base_yaml_equals_the_dataclass_defaults():
    assert to_dict(load_config("base")) == to_dict(Config())


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads(name):
    cfg = load_config(name)
    assert cfg.run.out.startswith("runs/")
    if name not in ("base", "demo", "study", "synthetic", "synthetic-fast") and not name.startswith("study-"):
        assert (
            cfg.parsers.iterations == 100_000 and cfg.translator.iterations == 200_000
        )  # the paper's schedule


def test_presets_are_configs_not_code_branches():
    assert load_config("ablation-no-ml").joint.lambda1 == 0.0
    assert load_config("ablation-no-ml").joint.lambda2 == 1.0
    assert load_config("ablation-no-e2e").joint.lambda2 == 0.0
    neither = load_config("ablation-neither").joint
    assert (neither.lambda1, neither.lambda2, neither.lambda3) == (0.0, 0.0, 0.5)
    fractions = [load_config(f"depth-fraction-{p}").data.depth_fraction for p in (1, 10, 100)]
    assert fractions == [0.01, 0.1, 1.0]
    assert load_config("celebamask-eagrnet").model.arch == "eagrnet"
    assert load_config("lapa-eagrnet").data.root.endswith("LaPa-D")


def test_study_presets_hold_the_study_design():
    from faceparse.workflows.study import OPTION_VARIANTS

    competent, flip, variants = (load_config(f"study-{n}") for n in ("competent", "flip", "variants"))
    assert competent.study.gate and competent.study.fractions == [0.01, 0.1, 1.0]
    assert competent.data.size == load_config("synthetic").data.size  # the recipe's pre-training
    assert flip.study.flip_diagnostic and flip.study.fractions == [0.1]
    assert set(variants.study.variants) == set(OPTION_VARIANTS) and len(variants.study.seeds) == 5
    fast = load_config("study-fast")
    assert fast.study.gate and fast.study.seeds == competent.study.seeds
    assert (fast.data.size, fast.data.crop, fast.parsers.optimizer) == (192, 160, "adam")  # 128: brows < 50
    assert competent.parsers.optimizer == "sgd"  # only the fast presets leave the paper's optimiser


def test_dotted_overrides_and_types():
    cfg = load_config(
        "demo", ["joint.lambda1=0", "run.devices=2", "data.root=/x/y", "translator.betas=[0.9,0.99]"]
    )
    assert cfg.joint.lambda1 == 0.0 and isinstance(cfg.joint.lambda1, float)
    assert cfg.run.devices == 2 and cfg.data.root == "/x/y" and cfg.translator.betas == [0.9, 0.99]


def test_unknown_key_is_named():
    with pytest.raises(DataError, match="lambda9"):
        load_config(None, ["joint.lambda9=1"])


def test_wrong_type_is_named():
    with pytest.raises(DataError, match="iterations"):
        load_config(None, ["parsers.iterations=many"])


def test_bad_values_are_rejected():
    # closed choices are typed (Literal): OmegaConf names the key and the choices
    with pytest.raises(
        DataError, match=r"model\.arch: Invalid value 'unet', expected one of \['bisenet', 'eagrnet'\]"
    ):
        load_config(None, ["model.arch=unet"])
    for key in ("data.augment", "model.discriminator", "run.precision", "parsers.optimizer", "joint.ml_loss"):
        with pytest.raises(DataError, match=key.replace(".", r"\.")):
            load_config(None, {key: "nonsense"})
    with pytest.raises(ValueError, match="even"):
        load_config(None, ["joint.batch_size=3"])
    with pytest.raises(ValueError, match="lambda2"):
        load_config(None, ["joint.lambda2=-1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["joint.lambda2"])
    with pytest.raises(ValueError, match="data.crop must be at least 16"):
        load_config(None, ["data.crop=8"])
    with pytest.raises(ValueError, match="data.crop applies to the bisenet"):
        load_config(None, ["data.crop=64", "data.augment=eagrnet"])


def test_run_layout_and_speed_keys(monkeypatch):
    for name in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    for key in ("run.devices", "run.num_nodes"):
        with pytest.raises(ValueError, match=key.replace(".", r"\.") + " must be ≥ 1"):
            load_config(None, [f"{key}=0"])
    cfg = resolve(load_config(None, ["run.accelerator=cpu"]), num_classes=11)
    # no launcher: one device on one node; cuDNN autotuning only for CUDA; compile is opt-in
    assert (cfg.run.devices, cfg.run.num_nodes, cfg.run.cudnn_benchmark, cfg.run.compile) == (
        1,
        1,
        False,
        False,
    )
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    cfg = resolve(load_config(None, ["run.accelerator=cpu"]), num_classes=11)
    assert (cfg.run.devices, cfg.run.num_nodes) == (2, 2)  # torchrun's layout, saved with the run
    with pytest.raises(ValueError, match="run.devices=4 but torchrun started 4 processes: 2 per node"):
        resolve(load_config(None, ["run.devices=4"]), num_classes=11)
    # a resume may turn compilation or cuDNN autotuning on or off, not change the process layout
    assert resume_safe("run.compile") and resume_safe("run.cudnn_benchmark")
    assert not resume_safe("run.devices") and not resume_safe("run.num_nodes")


def test_inheritance_chain_and_errors_name_the_file(tmp_path: Path):
    parent = tmp_path / "parent.yaml"
    parent.write_text("data:\n  size: 96\nrun:\n  seed: 3\n")
    child = tmp_path / "child.yaml"
    child.write_text("inherit: parent.yaml\nrun:\n  seed: 5\n")
    cfg = load_config(child)
    assert (cfg.data.size, cfg.run.seed) == (96, 5)

    loop = tmp_path / "loop.yaml"
    loop.write_text("inherit: loop.yaml\n")
    with pytest.raises(DataError, match="loops back"):
        load_config(loop)
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(DataError, match="broken.yaml"):
        load_config(broken)
    typo = tmp_path / "typo.yaml"
    typo.write_text("dataa:\n  size: 1\n")
    with pytest.raises(DataError, match="typo.yaml"):
        load_config(typo)
    with pytest.raises(DataError, match="no-such-preset"):
        find_config("no-such-preset")


def test_saved_config_round_trips(tmp_path: Path):
    cfg = resolve(load_config("demo", ["joint.lambda2=0.25"]), num_classes=13)
    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(cfg))
    again = load_config(saved)
    assert to_dict(again) == to_dict(cfg)
    assert to_dict(from_dict(to_dict(cfg))) == to_dict(cfg)


@pytest.mark.parametrize(
    ("size", "crop", "downs"), [(512, 448, 6), (192, 128, 6), (256, 160, 5), (128, 256, 7)]
)
def test_generator_depth_halves_both_the_window_and_the_whole_image(size, crop, downs):
    cfg = resolve(load_config(None, [f"data.size={size}", f"data.crop={crop}"]), 13)
    assert cfg.model.generator_num_downs == downs


@pytest.mark.parametrize(("size", "downs"), [(512, 8), (256, 8), (448, 6), (128, 7), (64, 6), (96, 5)])
def test_generator_depth_follows_the_image_size(size, downs):
    assert resolve(load_config(None, [f"data.size={size}"]), 13).model.generator_num_downs == downs
    assert (
        resolve(
            load_config(None, [f"data.size={size}", "model.generator_num_downs=4"]), 13
        ).model.generator_num_downs
        == 4
    )


def test_the_config_choices_of_mutual_learning_match_the_losses():
    from typing import get_args

    from faceparse.losses.joint import ML_DIRECTIONS, ML_LOSSES
    from faceparse.runs.config import MLDirection, MLLoss

    assert get_args(MLLoss) == ML_LOSSES and get_args(MLDirection) == ML_DIRECTIONS


def test_every_joint_arm_is_a_config_overlay_and_table_7_presets_use_them():
    from faceparse.runs.config import CONFIG_DIR, read_overlay
    from faceparse.workflows.study import OPTION_VARIANTS, VARIANTS, variant_overrides

    files = {p.stem for p in (CONFIG_DIR / "variants").glob("*.yaml")}
    assert files == (set(VARIANTS) - {"joint"}) | set(OPTION_VARIANTS)  # no arm restated in code
    assert variant_overrides("joint") == []  # the literal Eq. 4 with every term
    assert variant_overrides("control") == ["joint.lambda1=0.0", "joint.lambda2=0.0"]
    assert read_overlay("variants/ml-kl") == {"joint": {"ml_loss": "kl"}}
    for preset, overlay in (
        ("ablation-no-ml", "no-ml"),
        ("ablation-no-e2e", "no-e2e"),
        ("ablation-neither", "control"),
    ):
        cfg = load_config(preset)  # inherit: [celebamask-eagrnet.yaml, variants/<overlay>.yaml]
        assert cfg.model.arch == "eagrnet" and cfg.run.out == f"runs/{preset}"
        assert load_config(cfg) == load_config(
            "celebamask-eagrnet", [*variant_overrides(overlay), *_runs(cfg)]
        )


def _runs(cfg) -> list[str]:
    """The keys an ablation preset sets besides its overlay: where it starts from and where it writes."""
    j = cfg.joint
    return [f"joint.init_rgb={j.init_rgb}", f"joint.init_depth={j.init_depth}",
            f"joint.init_translator={j.init_translator}", f"run.out={cfg.run.out}"]  # fmt: skip


# Keys a preset may restate although its parent already has the value: they are the preset's identity
# (the architecture of a paper row, the fraction of a Figure 7 cell, a documented size choice, a run
# folder shared on purpose), each with a comment in the preset.
RESTATED_ON_PURPOSE = {
    ("celebamask-bisenet", "model.arch"),
    ("helen-bisenet", "model.arch"),
    ("lapa-bisenet", "model.arch"),
    ("celebamask-eagrnet", "data.size"),
    ("helen-eagrnet", "data.size"),
    ("lapa-eagrnet", "data.size"),
    ("depth-fraction-10", "data.depth_fraction"),
    ("translation", "run.out"),
}


def test_presets_override_defaults_and_never_restate_them():
    import yaml
    from omegaconf import OmegaConf

    from faceparse.runs.config import CONFIG_DIR, Config, _read_yaml

    def leaves(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    restated = []
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        parents = raw.pop("inherit", [])
        parents = parents if isinstance(parents, list) else [parents]
        inherited = [_read_yaml((path.parent / parent).resolve()) for parent in parents]
        base = OmegaConf.merge(OmegaConf.structured(Config), *inherited)
        for key, value in leaves(raw):
            if (path.stem, key) not in RESTATED_ON_PURPOSE and OmegaConf.select(base, key) == value:
                restated.append(f"{path.name}: {key}")
    assert restated == []
