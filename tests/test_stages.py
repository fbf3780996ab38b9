"""The stage objects (runs/stages.py): each stage defined once, every stage has a step, plans follow the
config (paper §4.2), and names are only looked up, never compared."""

from __future__ import annotations

import pytest

from faceparse.engine.loop import STEPS
from faceparse.runs.config import load_config, resolve
from faceparse.runs.stages import (
    JOINT,
    PRETRAIN,
    PRETRAIN_DEPTH,
    PRETRAIN_RGB,
    PRETRAIN_TRANSLATOR,
    STAGE_NAMES,
    STAGES,
    get_stage,
    stages_of,
)


def test_the_four_stages_in_order_each_with_a_step():
    assert STAGE_NAMES == ("pretrain-rgb", "pretrain-depth", "pretrain-translator", "joint")
    assert STAGES == (*PRETRAIN, JOINT) and [s.index for s in STAGES] == [0, 1, 2, 3]
    assert set(STEPS) == set(STAGES)  # a new stage without a step function fails here
    assert {role for s in PRETRAIN for role in s.roles} == set(
        JOINT.roles
    )  # joint trains what was pre-trained


def test_joint_initialises_each_network_from_the_stage_that_pre_trained_it():
    assert set(JOINT.init_from) == set(JOINT.roles)
    for role, stage in JOINT.init_from.items():
        assert role in stage.roles and stage in PRETRAIN
    assert all(not s.init_from for s in PRETRAIN)  # pre-training starts from scratch (§3.2)


def test_pools_follow_the_paper_data_use():
    # F_R: every RGB-labelled sample; F_D and G: the depth-annotated subset; joint: [depth | rgb] halves
    assert [s.pools for s in STAGES] == ["rgb", "depth", "depth", "joint"]


def test_plans_read_the_config():
    cfg = load_config(
        None,
        {
            "parsers.iterations": 11,
            "parsers.depth_iterations": 7,
            "translator.iterations": 5,
            "joint.iterations": 3,
        },
    )
    resolve(cfg, 13)
    assert [s.plan(cfg).iterations for s in STAGES] == [11, 7, 5, 3]
    joint = JOINT.plan(cfg)
    assert joint.roles == JOINT.roles and joint.batch_size == cfg.joint.batch_size
    assert {scale for _, scale in joint.optim.values()} == {0.1}  # "reduced to one-tenth" (§4.2)
    assert joint.optim["parser_depth"][0] is cfg.parsers and joint.optim["generator"][0] is cfg.translator
    rgb = PRETRAIN_RGB.plan(cfg)
    assert rgb.optim == {"parser_rgb": (cfg.parsers, 1.0)} and rgb.warmup == {
        "parser_rgb": cfg.parsers.warmup_iters
    }
    assert PRETRAIN_TRANSLATOR.plan(cfg).batch_size == cfg.translator.batch_size


def test_lookup_by_name_and_all():
    assert get_stage("pretrain-depth") is PRETRAIN_DEPTH and get_stage(JOINT) is JOINT
    assert stages_of("all") == STAGES and stages_of("joint") == (JOINT,) and str(JOINT) == "joint"
    with pytest.raises(
        ValueError, match="unknown stage 'pretrain'; choose one of pretrain-rgb, .*, joint, all"
    ):
        get_stage("pretrain")


def test_stage_objects_are_hashable_by_identity():
    assert len({*STAGES, *STAGES}) == 4 and PRETRAIN_RGB != PRETRAIN_DEPTH
