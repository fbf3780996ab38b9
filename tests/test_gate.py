"""Competence gate and demo target (faceparse.eval.gate): thresholds, failures named, NaN fails."""

from __future__ import annotations

import math

from faceparse.eval.gate import COMPETENCE, DEMO_TARGET, Thresholds, gate_markdown
from faceparse.eval.results import ParsingScores

CLASSES = (
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "l_ear",
    "r_ear",
    "nose",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
)


def scores(value: float, mean: float | None = None, **overrides: float) -> ParsingScores:
    per_class = {name: overrides.get(name, value) for name in CLASSES}
    mean_f1 = sum(per_class.values()) / len(per_class) if mean is None else mean
    return ParsingScores("celebamask13", 1000, per_class, mean_f1)


def test_competence_passes_and_fails_by_class():
    result = COMPETENCE.check(scores(75.0), scores(55.0))
    assert result["passed"] and result["split"] == "val"
    result = COMPETENCE.check(scores(80.0, l_brow=45.0), scores(55.0, r_eye=15.0))
    assert not result["passed"]
    assert result["rgb"]["failures"] == ["l_brow 45.0 < 50"]
    assert result["depth"]["failures"] == ["r_eye 15.0 < 20"]


def test_mean_threshold_and_missing_scores():
    result = COMPETENCE.check(scores(60.0), None)
    assert result["rgb"]["failures"] == ["mean 60.0 < 70"] and result["depth"]["failures"] == ["no scores"]


def test_nan_fails():
    nan = scores(80.0, mean=80.0, nose=math.nan)
    assert Thresholds(every_class=10.0).check(nan) == ["nose nan < 10"]
    assert Thresholds(mean=10.0).check(scores(80.0, mean=math.nan)) == ["mean nan < 10"]


def test_demo_target_checks_named_classes_only():
    ok = scores(75.0, skin=90.0, hair=90.0, l_ear=0.0, mouth=0.0, l_brow=26.0, r_brow=26.0)
    assert DEMO_TARGET.check(ok, scores(45.0))["passed"]
    low = DEMO_TARGET.check(scores(70.0, l_eye=39.0, u_lip=10.0), scores(30.0))
    assert low["rgb"]["failures"] == ["l_eye 39.0 < 40", "u_lip 10.0 < 25"]
    assert low["depth"]["failures"] == ["mean 30.0 < 40"]


def test_markdown_names_the_verdict():
    text = gate_markdown(COMPETENCE.check(scores(80.0, l_brow=30.0), scores(55.0)))
    assert "NOT met" in text and "l_brow 30.0 < 50" in text and "depth parser" in text
