"""`faceparse score-masks` / `score_masks`: the dataset-level protocol on folders of label PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceparse.cli import app
from faceparse.data.format import write_label
from faceparse.eval.metrics import score_masks
from faceparse.labels import IGNORE_INDEX, get_scheme
from faceparse.utils.io import DataError

HELEN = get_scheme("helen11")
# (height, width, error rate): a small, very noisy image beside large, clean ones, so that averaging
# F1 per image (the wrong protocol, FACTS §5) gives clearly different numbers from one matrix.
IMAGES = [(12, 9, 0.8), (64, 48, 0.1), (40, 70, 0.25), (33, 33, 0.5), (80, 60, 0.05)]


def _random_pair(
    rng: np.random.Generator, h: int, w: int, error: float, c: int
) -> tuple[np.ndarray, np.ndarray]:
    gt = rng.integers(0, c, size=(h, w)).astype(np.uint8)
    wrong = rng.random((h, w)) < error
    pred = np.where(wrong, rng.integers(0, c, size=(h, w)), gt).astype(np.uint8)
    gt[rng.random((h, w)) < 0.05] = IGNORE_INDEX
    return pred, gt


def _write_folders(tmp_path: Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Path, Path]:
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    for i, (pred, gt) in enumerate(pairs):
        write_label(pred_dir / f"img{i:02d}.png", pred)
        write_label(gt_dir / f"img{i:02d}.png", gt)
    return pred_dir, gt_dir


def _f1(tp: int, fp: int, fn: int) -> float:
    return 100.0 * 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")


def _reference(
    pairs: list[tuple[np.ndarray, np.ndarray]], members_of: dict[str, list[int]]
) -> dict[str, float]:
    """Plain numpy: TP/FP/FN per class (or merged group) summed over ALL pixels of ALL images."""
    out = {}
    for name, members in members_of.items():
        tp = fp = fn = 0
        for pred, gt in pairs:
            valid = gt != IGNORE_INDEX
            is_pred, is_gt = np.isin(pred, members) & valid, np.isin(gt, members) & valid
            tp += int((is_pred & is_gt).sum())
            fp += int((is_pred & ~is_gt).sum())
            fn += int((~is_pred & is_gt).sum())
        out[name] = _f1(tp, fp, fn)
    return out


def _per_image_mean_f1(pairs: list[tuple[np.ndarray, np.ndarray]], c: int) -> float:
    """The wrong protocol: mean F1 of each image, then averaged over images."""
    means = []
    for pair in pairs:
        per_class = _reference([pair], {str(k): [k] for k in range(1, c)})
        means.append(np.nanmean(list(per_class.values())))
    return float(np.mean(means))


@pytest.fixture
def helen_folders(tmp_path: Path) -> tuple[Path, Path, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(2021)
    pairs = [_random_pair(rng, h, w, e, HELEN.num_classes) for h, w, e in IMAGES]
    pred_dir, gt_dir = _write_folders(tmp_path, pairs)
    return pred_dir, gt_dir, pairs


def test_score_masks_matches_dataset_level_reference(helen_folders) -> None:
    pred_dir, gt_dir, pairs = helen_folders
    result = score_masks(pred_dir, gt_dir, "helen11")
    scores = result.parsing
    per_class_ref = _reference(pairs, {name: [i] for i, name in enumerate(HELEN.classes) if i > 0})
    groups_ref = _reference(pairs, {g: HELEN.group_ids(g) for g in HELEN.groups})

    assert result.images == len(IMAGES) and result.missing == []
    for name, ref in per_class_ref.items():
        assert scores.per_class[name] == pytest.approx(ref, abs=0.01), name
    mean_ref = float(np.mean(list(per_class_ref.values())))
    assert scores.mean_f1 == pytest.approx(mean_ref, abs=0.01)
    for g, ref in groups_ref.items():
        assert scores.groups[g] == pytest.approx(ref, abs=0.01), g
    assert scores.overall_f1 is not None
    assert scores.overall_f1 == pytest.approx(groups_ref["overall"], abs=0.01)

    # The per-image average is a different number: this test would catch the wrong protocol.
    assert abs(_per_image_mean_f1(pairs, HELEN.num_classes) - scores.mean_f1) > 1.0
    per_image_overall = np.mean([_reference([p], {"o": HELEN.group_ids("overall")})["o"] for p in pairs])
    assert abs(per_image_overall - scores.overall_f1) > 1.0


def test_ignore_pixels_do_not_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 13, size=(32, 32)).astype(np.uint8)
    pred = gt.copy()
    gt[:8] = IGNORE_INDEX
    pred[:8] = rng.integers(0, 13, size=(8, 32))  # wrong everywhere it is ignored
    pred_dir, gt_dir = _write_folders(tmp_path, [(pred, gt)])
    scores = score_masks(pred_dir, gt_dir, "celebamask13").parsing
    assert scores.mean_f1 == pytest.approx(100.0)
    assert scores.pixels == 24 * 32


def test_mismatched_file_sets_name_the_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    pairs = [_random_pair(rng, 16, 16, 0.2, 11) for _ in range(3)]
    pred_dir, gt_dir = _write_folders(tmp_path, pairs)
    (pred_dir / "img01.png").rename(pred_dir / "stray.png")

    with pytest.raises(DataError) as err:
        score_masks(pred_dir, gt_dir, "lapa11")
    assert "img01.png" in str(err.value) and "stray.png" in str(err.value)

    result = CliRunner().invoke(
        app, ["score-masks", "--pred", str(pred_dir), "--gt", str(gt_dir), "--scheme", "lapa11"]
    )
    assert result.exit_code == 2
    assert "img01.png" in result.output and "stray.png" in result.output

    scores = score_masks(pred_dir, gt_dir, "lapa11", ignore_missing=True)
    assert scores.images == 2 and scores.missing == ["img01"]


def test_mismatched_sizes_name_both_files(tmp_path: Path) -> None:
    pred_dir, gt_dir = _write_folders(tmp_path, [(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))])
    write_label(pred_dir / "img00.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(DataError, match="size 9x8 differs") as err:
        score_masks(pred_dir, gt_dir, "lapa11")
    assert err.value.path == pred_dir / "img00.png"
    assert str(gt_dir / "img00.png") in str(err.value)


def test_ids_outside_the_scheme_name_the_file(tmp_path: Path) -> None:
    pred_dir, gt_dir = _write_folders(tmp_path, [(np.full((4, 4), 11, np.uint8), np.zeros((4, 4), np.uint8))])
    with pytest.raises(DataError, match="predicted id 11") as err:
        score_masks(pred_dir, gt_dir, "helen11")
    assert err.value.path == pred_dir / "img00.png"
    write_label(pred_dir / "img00.png", np.zeros((4, 4), np.uint8))
    write_label(gt_dir / "img00.png", np.full((4, 4), 40, np.uint8))
    with pytest.raises(DataError, match="label id 40") as err:
        score_masks(pred_dir, gt_dir, "helen11")
    assert err.value.path == gt_dir / "img00.png"


def test_cli_writes_json_and_prints_table(helen_folders, tmp_path: Path) -> None:
    pred_dir, gt_dir, _ = helen_folders
    out = tmp_path / "scores.json"
    args = [
        "score-masks",
        "--pred",
        str(pred_dir),
        "--gt",
        str(gt_dir),
        "--scheme",
        "helen11",
        "--json",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Overall" in result.output and "Skin" in result.output
    data = json.loads(out.read_text())
    assert {"per_class", "mean_f1", "overall_f1", "groups", "images"} <= set(data)
    assert data == score_masks(pred_dir, gt_dir, "helen11").to_json()
    assert list(data) == [
        "scheme",
        "pixels",
        "per_class",
        "mean_f1",
        "groups",
        "overall_f1",
        "images",
        "missing",
    ]
    assert set(data["per_class"]) == set(HELEN.classes[1:])


def test_cli_json_uses_null_for_undefined_classes(tmp_path: Path) -> None:
    label = np.zeros((8, 8), np.uint8)
    label[2:6, 2:6] = 1  # only skin: every other class is absent from both folders
    pred_dir, gt_dir = _write_folders(tmp_path, [(label, label)])
    out = tmp_path / "s.json"
    args = [
        "score-masks",
        "--pred",
        str(pred_dir),
        "--gt",
        str(gt_dir),
        "--scheme",
        "celebamask13",
        "--json",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())  # strict JSON: no NaN tokens
    assert data["per_class"]["skin"] == 100.0 and data["per_class"]["hair"] is None
    assert data["mean_f1"] == 100.0 and "overall_f1" not in data


def test_cli_rejects_unknown_scheme_and_missing_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["score-masks", "--pred", str(tmp_path), "--gt", str(tmp_path), "--scheme", "x"]
    )
    assert result.exit_code == 2 and "unknown label scheme" in result.output
    missing = tmp_path / "nope"
    result = CliRunner().invoke(
        app, ["score-masks", "--pred", str(missing), "--gt", str(tmp_path), "--scheme", "lapa11"]
    )
    assert result.exit_code == 2 and "nope" in result.output
