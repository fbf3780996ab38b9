"""Dataset-level metrics: confusion counting, F1 averaging, merged groups, depth L1 (FACTS §1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faceparse.eval.metrics import (
    ConfusionMatrix,
    DepthL1,
    f1_from_confusion,
    group_f1,
    jsonable,
    mean_f1,
    parsing_scores,
)
from faceparse.labels import IGNORE_INDEX, get_scheme

# 4x4 maps with 3 classes; TP/FP/FN counted by hand below.
TARGET = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 2, 2],
        [2, 2, 2, 2],
    ],
    dtype=np.uint8,
)
PRED = np.array(
    [
        [0, 1, 1, 1],
        [0, 0, 1, 2],
        [2, 2, 0, 2],
        [2, 2, 2, 2],
    ],
    dtype=np.uint8,
)
# class 0: TP 3, FP 1 (2,2), FN 1 (0,1) -> 6/8
# class 1: TP 3, FP 1 (0,1), FN 1 (1,3) -> 6/8
# class 2: TP 7, FP 1 (1,3), FN 1 (2,2) -> 14/16
EXPECTED_CM = np.array([[3, 1, 0], [0, 3, 1], [1, 0, 7]])


def _cm(pred=PRED, target=TARGET, c=3) -> ConfusionMatrix:
    cm = ConfusionMatrix(c)
    cm.update(pred, target)
    return cm


def test_confusion_counts_rows_are_ground_truth() -> None:
    counts = _cm().compute()
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, EXPECTED_CM)


def test_known_f1_values() -> None:
    f1 = f1_from_confusion(_cm())
    np.testing.assert_allclose(f1, [0.75, 0.75, 0.875])
    assert mean_f1(_cm()) == pytest.approx((0.75 + 0.875) / 2)  # background excluded
    assert mean_f1(_cm(), background=None) == pytest.approx((0.75 + 0.75 + 0.875) / 3)


def test_group_f1_merges_members_into_one_class() -> None:
    # Classes 1 and 2 merged: TP = 3+1+0+7 = 11, FP = 1 (bg predicted as 1), FN = 1 (2 predicted as bg).
    assert group_f1(_cm(), [1, 2]) == pytest.approx(22 / 24)
    # A single-member group equals that class's F1.
    assert group_f1(_cm(), [2]) == pytest.approx(0.875)


def test_group_f1_counts_left_right_swaps_as_correct() -> None:
    scheme = get_scheme("helen11")
    left, right = scheme.index("left_eye"), scheme.index("right_eye")
    target = np.array([[left, right]], dtype=np.uint8)
    pred = np.array([[right, left]], dtype=np.uint8)
    cm = _cm(pred, target, scheme.num_classes)
    assert f1_from_confusion(cm)[left] == 0.0
    assert group_f1(cm, scheme.group_ids("eyes")) == 1.0


def test_absent_class_is_nan_and_excluded_from_mean() -> None:
    cm = _cm(PRED, TARGET, c=4)  # class 3 never occurs
    f1 = f1_from_confusion(cm)
    assert math.isnan(f1[3])
    assert mean_f1(cm) == pytest.approx((0.75 + 0.875) / 2)
    # Predicted but absent from the ground truth: all false positives, F1 = 0 and it counts.
    pred = PRED.copy()
    pred[0, 0] = 3
    f1 = f1_from_confusion(_cm(pred, TARGET, c=4))
    assert f1[3] == 0.0
    assert mean_f1(_cm(pred, TARGET, c=4)) == pytest.approx((0.75 + 0.875 + 0.0) / 3)


def test_ignore_pixels_are_excluded() -> None:
    target = TARGET.copy()
    target[2, 2] = IGNORE_INDEX  # the one pixel where class 2 was predicted as background
    cm = _cm(PRED, target)
    assert cm.total == 15
    f1 = f1_from_confusion(cm)
    assert f1[2] == pytest.approx(14 / 15)  # TP 7, FP 1, FN 0
    assert f1[0] == pytest.approx(6 / 7)  # TP 3, FP 0, FN 1


def test_torch_and_numpy_agree_and_batches_sum() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(3, 17, 23)).astype(np.uint8)
    pred = rng.integers(0, 5, size=(3, 17, 23)).astype(np.int64)
    target[:, :2] = IGNORE_INDEX
    cm_np = ConfusionMatrix(5)
    cm_np.update(pred, target)
    cm_torch = ConfusionMatrix(5)
    cm_torch.update(torch.from_numpy(pred), torch.from_numpy(target))
    np.testing.assert_array_equal(cm_np.compute(), cm_torch.compute())
    # The GPU code path (torch.bincount with an extra bin for ignored pixels), run here on CPU tensors.
    on_device = cm_torch._count_on_device(torch.from_numpy(pred), torch.from_numpy(target))
    np.testing.assert_array_equal(on_device, cm_np.compute())
    with pytest.raises(ValueError, match="predicted ids"):
        cm_torch._count_on_device(torch.full((2, 2), 5), torch.zeros(2, 2, dtype=torch.long))
    assert cm_np.total == 3 * 15 * 23

    # Two batches counted separately and summed (e.g. two processes) equal one matrix fed both.
    first, second = ConfusionMatrix(5), ConfusionMatrix(5)
    first.update(pred[:1], target[:1])
    second.update(torch.from_numpy(pred[1:]), torch.from_numpy(target[1:]))
    np.testing.assert_array_equal((first + second).compute(), cm_np.compute())
    assert first.total == 15 * 23  # `+` leaves its operands alone
    np.testing.assert_array_equal(first.merge(second).compute(), cm_np.compute())
    rebuilt = ConfusionMatrix.from_counts(torch.from_numpy(cm_np.compute()))
    np.testing.assert_array_equal(rebuilt.compute(), cm_np.compute())
    cm_np.reset()
    assert cm_np.total == 0


def test_bad_inputs_raise_clear_errors() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="predicted ids must lie in"):
        cm.update(np.full((2, 2), 3), np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="target ids"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 7))
    with pytest.raises(TypeError, match="argmax"):
        cm.update(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2), dtype=np.uint8), np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="merge"):
        cm.merge(ConfusionMatrix(4))
    assert cm.total == 0  # nothing half-counted


def test_parsing_scores_percent_and_groups() -> None:
    scheme = get_scheme("helen11")
    rng = np.random.default_rng(1)
    target = rng.integers(0, 11, size=(40, 40))
    pred = np.where(rng.random((40, 40)) < 0.7, target, rng.integers(0, 11, size=(40, 40)))
    cm = _cm(pred, target, 11)
    scores = parsing_scores(cm, scheme)
    f1 = f1_from_confusion(cm)
    assert list(scores.per_class) == list(scheme.classes[1:])
    assert scores.per_class["nose"] == pytest.approx(100 * f1[scheme.index("nose")])
    assert scores.mean_f1 == pytest.approx(100 * np.mean(f1[1:]))
    assert set(scores.groups) == {"eyes", "brows", "mouth", "overall"}
    assert scores.overall_f1 == pytest.approx(100 * group_f1(cm, scheme.group_ids("overall")))
    assert scores.pixels == 1600 and scores.scheme == "helen11"

    plain = parsing_scores(_cm(PRED, TARGET, 13), "celebamask13")
    assert plain.groups == {} and plain.overall_f1 is None
    assert "groups" not in plain.to_json() and "overall_f1" not in plain.to_json()
    assert math.isnan(plain.per_class["hair"])
    assert plain.to_json()["per_class"]["hair"] is None
    assert jsonable({"f1": math.nan}) == {"f1": None}  # still importable from metrics
    lapa = parsing_scores(cm, "lapa11")
    assert lapa.overall_f1 is None and "overall" in lapa.groups  # LaPa reports the mean, not Helen's overall
    with pytest.raises(ValueError, match="11 classes, scheme celebamask13 has 13"):
        parsing_scores(cm, "celebamask13")


def test_depth_l1_all_and_foreground() -> None:
    target = np.array([[0.0, 0.5], [1.0, 0.0]])
    pred = np.array([[0.1, 0.5], [0.8, 0.2]])
    l1 = DepthL1()
    l1.update(pred, target)
    out = l1.compute()
    assert out.l1 == pytest.approx((0.1 + 0.0 + 0.2 + 0.2) / 4)
    assert out.l1_fg == pytest.approx((0.0 + 0.2) / 2)  # gt depth > 0 only

    # Dataset level: a second, larger batch weighs by its pixel count (not a mean of batch means).
    big_target = np.full((1, 4, 4), 0.5, dtype=np.float32)
    big_pred = np.full((1, 4, 4), 0.25, dtype=np.float32)
    l1.update(torch.from_numpy(big_pred), torch.from_numpy(big_target))
    out = l1.compute()
    assert out.l1 == pytest.approx((0.5 + 16 * 0.25) / 20)
    assert out.l1_fg == pytest.approx((0.2 + 16 * 0.25) / 18)

    other = DepthL1()
    other.update(torch.from_numpy(pred), torch.from_numpy(target))
    assert other.compute().to_json() == pytest.approx({"l1": 0.125, "l1_fg": 0.1})
    assert (other + DepthL1()).compute() == other.compute()
    empty = DepthL1().compute()
    assert math.isnan(empty.l1) and math.isnan(empty.l1_fg)
    assert empty.to_json() == {"l1": None, "l1_fg": None}
