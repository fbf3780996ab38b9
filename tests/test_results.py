"""Typed results (faceparse.eval.results): the JSON form is exactly the dicts written before the types
existed, NaN → null → NaN, and files written then read back unchanged."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from faceparse.eval.metrics import DepthL1, parsing_scores
from faceparse.eval.report import aggregate_seeds
from faceparse.eval.results import (
    Comparison,
    Evaluation,
    GroupScores,
    MaskScores,
    ParsingScores,
    SeedAggregate,
    TranslationScores,
    jsonable,
    metric_at,
)

NAN = math.nan


def _text(obj: object) -> str:
    """As the files are written (utils.io.atomic_write_json): key order matters."""
    return json.dumps(obj, indent=2, sort_keys=False)


def _celebamask_matrix() -> np.ndarray:
    """13 classes: skin 6 TP, 2 FN, 2 FP (F1 75); a brow confused with the other (2/3 each); l_eye predicted
    once but absent (0); hair perfect (100); every other class absent from truth and prediction (NaN)."""
    c = np.zeros((13, 13), dtype=np.int64)
    c[0, 0] = 20
    c[1, 1], c[1, 0], c[0, 1] = 6, 2, 2
    c[2, 2], c[2, 3], c[3, 3] = 1, 1, 1
    c[0, 4] = 1
    c[12, 12] = 4
    return c


def _helen_matrix() -> np.ndarray:
    """11 classes (helen11 / lapa11): a left eye predicted as the right eye counts for the merged "eyes"."""
    c = np.zeros((11, 11), dtype=np.int64)
    c[0, 0] = 20
    c[1, 1], c[1, 0] = 8, 2
    c[4, 4], c[4, 5], c[5, 5] = 2, 1, 3
    c[2, 2], c[2, 1] = 1, 1
    c[6, 6], c[0, 6] = 4, 1
    c[7, 7], c[9, 9], c[9, 7] = 2, 2, 1
    return c


# What parsing_scores returned (a dict) before it returned ParsingScores, on the matrices above.
OLD_CELEBAMASK = {
    "scheme": "celebamask13",
    "pixels": 38,
    "per_class": {
        "skin": 75.0,
        "l_brow": 66.66666666666666,
        "r_brow": 66.66666666666666,
        "l_eye": 0.0,
        "r_eye": NAN,
        "l_ear": NAN,
        "r_ear": NAN,
        "nose": NAN,
        "mouth": NAN,
        "u_lip": NAN,
        "l_lip": NAN,
        "hair": 100.0,
    },
    "mean_f1": 61.66666666666666,
}
OLD_HELEN_PER_CLASS = {
    "skin": 84.21052631578947,
    "left_eyebrow": 66.66666666666666,
    "right_eyebrow": NAN,
    "left_eye": 80.0,
    "right_eye": 85.71428571428571,
    "nose": 88.88888888888889,
    "upper_lip": 80.0,
    "inner_mouth": NAN,
    "lower_lip": 80.0,
    "hair": NAN,
}
OLD_HELEN_GROUPS = {"eyes": 100.0, "brows": 66.66666666666666, "mouth": 100.0, "overall": 94.11764705882352}
OLD_HELEN = {
    "scheme": "helen11",
    "pixels": 48,
    "per_class": OLD_HELEN_PER_CLASS,
    "mean_f1": 80.78290965509011,
    "groups": OLD_HELEN_GROUPS,
    "overall_f1": 94.11764705882352,
}
OLD_LAPA = {  # groups, but no overall_f1: LaPa is ranked by the mean
    "scheme": "lapa11",
    "pixels": 48,
    "per_class": OLD_HELEN_PER_CLASS,
    "mean_f1": 80.78290965509011,
    "groups": OLD_HELEN_GROUPS,
}


@pytest.mark.parametrize(
    ("matrix", "scheme", "old"),
    [
        (_celebamask_matrix, "celebamask13", OLD_CELEBAMASK),
        (_helen_matrix, "helen11", OLD_HELEN),
        (_helen_matrix, "lapa11", OLD_LAPA),
    ],
)
def test_parsing_scores_json_is_the_old_dict(matrix, scheme, old) -> None:
    scores = parsing_scores(matrix(), scheme)
    assert isinstance(scores, ParsingScores)
    assert scores.to_json() == jsonable(old)  # NaN → null, as the files always held
    assert _text(scores.to_json()) == _text(jsonable(old))  # the same keys in the same order
    for name, value in old["per_class"].items():
        assert scores.per_class[name] == value or (math.isnan(value) and math.isnan(scores.per_class[name]))
    assert scores.mean_f1 == old["mean_f1"] and scores.pixels == old["pixels"]
    assert scores.groups == old.get("groups", {}) and scores.overall_f1 == old.get("overall_f1")


def test_parsing_scores_round_trip_keeps_nan() -> None:
    scores = parsing_scores(_helen_matrix(), "helen11")
    data = json.loads(_text(scores.to_json()))
    assert data["per_class"]["hair"] is None and data["per_class"]["inner_mouth"] is None
    back = ParsingScores.from_json(data)
    assert math.isnan(back.per_class["hair"]) and math.isnan(back.per_class["right_eyebrow"])
    assert back.to_json() == data
    assert {k: v for k, v in back.per_class.items() if not math.isnan(v)} == {
        k: v for k, v in scores.per_class.items() if not math.isnan(v)
    }
    assert (back.scheme, back.pixels, back.mean_f1, back.groups, back.overall_f1) == (
        scores.scheme,
        scores.pixels,
        scores.mean_f1,
        scores.groups,
        scores.overall_f1,
    )
    plain = ParsingScores.from_json(jsonable(OLD_CELEBAMASK))
    assert plain.groups == {} and plain.overall_f1 is None
    undefined = ParsingScores("helen11", 0, {"skin": NAN}, NAN, {"overall": NAN}, NAN)
    data = undefined.to_json()
    assert data == {
        "scheme": "helen11",
        "pixels": 0,
        "per_class": {"skin": None},
        "mean_f1": None,
        "groups": {"overall": None},
        "overall_f1": None,  # undefined, yet present: Helen reports it
    }
    again = ParsingScores.from_json(data)
    assert again.overall_f1 is not None and math.isnan(again.overall_f1) and math.isnan(again.mean_f1)


def test_translation_scores_round_trip() -> None:
    l1 = DepthL1()
    l1.update(np.array([[0.1, 0.5], [0.8, 0.2]]), np.array([[0.0, 0.5], [1.0, 0.0]]))
    scores = l1.compute()
    assert isinstance(scores, TranslationScores)
    assert scores.to_json() == {"l1": scores.l1, "l1_fg": scores.l1_fg}
    assert list(scores.to_json()) == ["l1", "l1_fg"]
    assert TranslationScores.from_json(json.loads(json.dumps(scores.to_json()))) == scores
    empty = DepthL1().compute()
    assert empty.to_json() == {"l1": None, "l1_fg": None}
    back = TranslationScores.from_json(empty.to_json())
    assert math.isnan(back.l1) and math.isnan(back.l1_fg)


# An eval-test.json as a study cached it before the types existed (scores_only of evaluate_checkpoint).
OLD_EVALUATION = {
    "checkpoint": "runs/x/joint/checkpoints/iter-0000002",
    "sources": {
        "parser_rgb": "runs/x/joint/checkpoints/iter-0000002",
        "parser_depth": "runs/x/joint/checkpoints/iter-0000002",
        "generator": "runs/x/joint/checkpoints/iter-0000002",
    },
    "stages": ["joint"],
    "iteration": 2,
    "arch": "bisenet",
    "data": "runs/x/data",
    "split": "test",
    "size": 32,
    "scheme": "celebamask13",
    "images": 6,
    "images_with_depth": 4,
    "rgb": jsonable(OLD_CELEBAMASK),
    "confusion_rgb": _celebamask_matrix().tolist(),
    "depth": jsonable({**OLD_CELEBAMASK, "pixels": 30, "mean_f1": 12.5}),
    "confusion_depth": _celebamask_matrix().tolist(),
    "translation": {"l1": 0.25, "l1_fg": None},
    "by_group": {
        "dark": {"images": 2, "rgb": jsonable(OLD_CELEBAMASK)},  # no depth map among the dark samples
        "normal": {"images": 4, "rgb": jsonable(OLD_CELEBAMASK), "depth": jsonable(OLD_CELEBAMASK)},
    },
}


def test_an_old_cached_evaluation_loads_and_writes_back_unchanged() -> None:
    text = _text(OLD_EVALUATION)
    evaluation = Evaluation.from_json(json.loads(text))
    assert evaluation.iteration == 2 and evaluation.stages == ["joint"] and evaluation.size == 32
    assert evaluation.rgb is not None and math.isnan(evaluation.rgb.per_class["nose"])
    assert evaluation.depth is not None and evaluation.depth.mean_f1 == 12.5
    assert evaluation.translation is not None and math.isnan(evaluation.translation.l1_fg)
    assert evaluation.by_group is not None
    assert evaluation.by_group["dark"].depth is None and evaluation.by_group["dark"].images == 2
    assert evaluation.by_group["normal"].parsing("depth") is not None
    assert evaluation.parsing("rgb") is evaluation.rgb and evaluation.parsing("depth") is evaluation.depth
    assert evaluation.examples == []
    assert _text(evaluation.to_json()) == text  # byte for byte, key order included


def test_evaluation_round_trip_without_optional_parts() -> None:
    rgb_only = Evaluation(
        checkpoint=None,
        sources={},
        stages=["pretrain-rgb"],
        iteration=None,
        arch="eagrnet",
        data="d",
        split="val",
        size=64,
        scheme="celebamask13",
        images=3,
        images_with_depth=0,
        rgb=parsing_scores(_celebamask_matrix(), "celebamask13"),
        confusion_rgb=_celebamask_matrix().tolist(),
        examples=[{"id": "s0", "rgb": np.zeros((4, 4, 3), np.uint8)}],
    )
    data = rgb_only.to_json()
    assert list(data) == [
        "checkpoint",
        "sources",
        "stages",
        "iteration",
        "arch",
        "data",
        "split",
        "size",
        "scheme",
        "images",
        "images_with_depth",
        "rgb",
        "confusion_rgb",
    ]
    back = Evaluation.from_json(json.loads(json.dumps(data)))
    assert back.depth is None and back.translation is None and back.by_group is None
    assert back.to_json() == data
    assert back.examples == [] and rgb_only.examples  # examples: for figures, never in the JSON form


def test_group_comparison_and_mask_scores_round_trip() -> None:
    scores = parsing_scores(_helen_matrix(), "helen11")
    group = GroupScores(images=3, depth=scores)
    assert group.to_json() == {"images": 3, "depth": scores.to_json()}
    assert GroupScores.from_json(group.to_json()).to_json() == group.to_json()

    joint = Evaluation.from_json(OLD_EVALUATION)
    alone = Comparison(joint)
    assert alone.to_json() == {"joint": OLD_EVALUATION, "baseline": None}
    pair = Comparison.from_json(json.loads(json.dumps(Comparison(joint, joint).to_json())))
    assert pair.baseline is not None and _text(pair.to_json()) == _text(
        {"joint": OLD_EVALUATION} | {"baseline": OLD_EVALUATION}
    )

    masks = MaskScores(scores, images=5, missing=["img03"])
    old = jsonable({**OLD_HELEN, "images": 5, "missing": ["img03"]})  # score_masks' old dict
    assert _text(masks.to_json()) == _text(old)
    assert MaskScores.from_json(old).to_json() == old


def test_seed_aggregate_round_trip_and_parts() -> None:
    seeds = [
        {"rgb": jsonable(OLD_CELEBAMASK), "translation": {"l1": 0.2, "l1_fg": None}},
        {
            "rgb": jsonable({**OLD_CELEBAMASK, "mean_f1": 71.66666666666666}),
            "translation": {"l1": 0.4, "l1_fg": None},
        },
    ]
    agg = aggregate_seeds(seeds)
    assert isinstance(agg, SeedAggregate) and agg.n == 2
    data = agg.to_json()
    assert list(data) == ["mean", "std", "n"]
    assert data["mean"]["rgb"]["mean_f1"] == pytest.approx(66.66666666666666)
    assert data["mean"]["rgb"]["per_class"]["nose"] is None  # undefined in every seed
    assert data["std"]["rgb"]["per_class"]["skin"] == 0.0
    assert data["mean"]["translation"]["l1_fg"] is None
    back = SeedAggregate.from_json(json.loads(json.dumps(data)))
    assert back.to_json() == data and back.n == 2

    rgb = agg.part("rgb")
    assert rgb is not None and rgb.n == 2 and agg.part("depth") is None
    assert metric_at(rgb, ("mean_f1",)) == (pytest.approx(66.66666666666666), pytest.approx(math.sqrt(50)))
    assert metric_at(rgb, ("per_class", "nose")) == (None, None)  # undefined: N/A in the tables
    assert metric_at(agg.part("translation"), ("l1_fg",)) == (None, None)
    single = aggregate_seeds(seeds[:1])
    mean, std = metric_at(single.part("rgb"), ("per_class", "skin"))
    assert mean == 75.0 and std is not None and math.isnan(std)  # one seed: no spread


def test_metric_at_reads_typed_scores() -> None:
    scores = parsing_scores(_helen_matrix(), "helen11")
    assert metric_at(scores, ("per_class", "skin")) == (scores.per_class["skin"], None)
    assert metric_at(scores, ("groups", "eyes")) == (100.0, None)
    assert metric_at(scores, ("overall_f1",)) == (scores.overall_f1, None)
    hair, _ = metric_at(scores, ("per_class", "hair"))
    assert hair is not None and math.isnan(hair)  # NaN in memory: the tables print N/A for it
    plain = parsing_scores(_celebamask_matrix(), "celebamask13")
    assert metric_at(plain, ("overall_f1",)) == (None, None) and metric_at(plain, ("groups", "eyes")) == (
        None,
        None,
    )
    assert metric_at(plain, ("per_class", "no_such_class")) == (None, None)
    assert metric_at(plain, ("to_json",)) == (None, None)  # fields only
    assert metric_at(TranslationScores(0.5, 0.25), ("l1_fg",)) == (0.25, None)
    assert metric_at(None, ("mean_f1",)) == (None, None)
