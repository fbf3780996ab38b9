"""Synthetic RGB-D generator: label/depth agreement, coverage, left/right, determinism, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceparse.data.format import open_layout, read_depth, read_label, read_rgb
from faceparse.data.synth import MARKER, generate_dataset, generate_sample, split_ids
from faceparse.labels import get_scheme
from faceparse.utils.io import DataError

SCHEME = get_scheme("celebamask13")


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    return [generate_sample(i, 64, seed=3) for i in range(40)]


def test_sample_arrays_and_label_depth_consistency(samples):
    for s in samples:
        rgb, depth, label = s["rgb"], s["depth"], s["label"]
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        assert depth.shape == (64, 64) and depth.dtype == np.float32
        assert label.shape == (64, 64) and label.dtype == np.uint8
        assert label.max() < SCHEME.num_classes
        assert (depth[label > 0] > 0).all(), "every labelled pixel must have depth"
        assert depth.max() == pytest.approx(1.0) and depth.min() == 0.0
        # neck and shoulders: depth but background label (paper Figure 2)
        assert ((depth > 0) & (label == 0)).sum() > 0
        assert rgb.std() > 5  # not a flat image


def test_class_coverage_on_a_small_set(samples):
    present = np.zeros(SCHEME.num_classes, dtype=int)
    for s in samples:
        present += np.bincount(s["label"].ravel(), minlength=SCHEME.num_classes) > 0
    assert (present[1:] > 0).all(), dict(zip(SCHEME.classes, present.tolist(), strict=True))
    for name in ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "l_lip", "hair"):
        assert present[SCHEME.index(name)] > len(samples) / 2, name


def test_subject_left_is_on_the_image_right_for_a_frontal_face():
    s = generate_sample(5, 96, seed=1, pose=(0.0, 0.0, 0.0))
    assert s["meta"]["pose_deg"] == {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}
    cols = np.arange(96)[None, :]

    def mean_col(name: str) -> float:
        m = s["label"] == SCHEME.index(name)
        assert m.any(), name
        return float((cols * m).sum() / m.sum())

    for left, right in (("l_eye", "r_eye"), ("l_brow", "r_brow")):
        assert mean_col(left) > 47.5 > mean_col(right)
    # the pose moves the face: yaw +40 turns it to the image's right, the nose follows
    turned = generate_sample(5, 96, seed=1, pose=(40.0, 0.0, 0.0))
    nose = SCHEME.index("nose")
    assert (cols * (turned["label"] == nose)).sum() / (turned["label"] == nose).sum() > mean_col("nose") + 3


def test_meta_records_the_draws(samples):
    meta = samples[0]["meta"]
    for key in ("pose_deg", "light", "mouth_opening_rad", "seed", "index", "head", "noise_sigma"):
        assert key in meta
    assert set(meta["light"]) >= {"direction_camera", "intensity", "mode"}
    json.dumps(meta)  # JSON-ready
    # light modes and mouth openings vary across samples
    assert len({s["meta"]["light"]["mode"] for s in samples}) == 3
    assert any(s["meta"]["mouth_opening_rad"] == 0 for s in samples)
    assert any(s["meta"]["mouth_opening_rad"] > 0 for s in samples)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parent != root
    }


def test_dataset_is_byte_identical_across_runs_and_worker_counts(tmp_path):
    a = generate_dataset(tmp_path / "a", 6, size=40, seed=7, workers=1)
    generate_dataset(tmp_path / "b", 6, size=40, seed=7, workers=2)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(fa) == 6 * 4 + 3 and fa == fb
    assert a.counts == {"train": 4, "val": 1, "test": 1}
    generate_dataset(tmp_path / "c", 6, size=40, seed=8, workers=1)
    fc = _files(tmp_path / "c")
    assert all(fa[k] != fc[k] for k in fa if k.startswith(("rgb/", "depth/", "label/")))


def test_written_dataset_reads_back(tmp_path):
    info = generate_dataset(tmp_path / "d", 10, size=32, seed=0, workers=1)
    layout = open_layout(tmp_path / "d")
    assert layout.info.scheme == "celebamask13" and info.image_size == [32, 32]
    assert layout.info.depth.range == pytest.approx(0.3) and layout.info.depth.unit == "m"
    ids = [i for split in ("train", "val", "test") for i in layout.split_ids(split)]
    assert ids == [f"{i:06d}" for i in range(10)]
    s = generate_sample(3, 32, seed=0)
    p = layout.paths("000003")
    np.testing.assert_array_equal(read_rgb(p.rgb), s["rgb"])
    np.testing.assert_array_equal(read_label(p.label), s["label"])
    np.testing.assert_allclose(read_depth(p.depth), s["depth"], atol=1 / 65535)
    assert json.loads(p.meta.read_text())["index"] == 3


def test_resume_skips_existing_files(tmp_path):
    root = tmp_path / "r"
    generate_dataset(root, 4, size=32, seed=2, workers=1)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    original = (root / "label" / "000002.png").read_bytes()
    (root / "label" / "000002.png").unlink()
    generate_dataset(root, 4, size=32, seed=2, workers=1)
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    changed = {p.relative_to(root).as_posix() for p in after if after[p] != before.get(p)}
    assert changed == {"rgb/000002.png", "depth/000002.png", "label/000002.png"}
    assert (root / "label" / "000002.png").read_bytes() == original
    assert not list(root.rglob("*.tmp*"))
    # a resumed run with another seed or size would mix datasets: refused, naming the marker
    with pytest.raises(DataError, match=MARKER):
        generate_dataset(root, 4, size=32, seed=3, workers=1)


def test_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "f" / "rgb").mkdir(parents=True)
    with pytest.raises(DataError, match="not made by"):
        generate_dataset(tmp_path / "f", 2, size=32, seed=0, workers=1)


def test_splits_are_deterministic_and_disjoint():
    s = split_ids(100)
    assert [len(s[k]) for k in ("train", "val", "test")] == [80, 10, 10]
    assert len(set(s["train"]) | set(s["val"]) | set(s["test"])) == 100
    assert split_ids(100) == s


def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from faceparse.cli import app

    result = CliRunner().invoke(
        app, ["synth", "--out", str(tmp_path / "cli"), "--num", "3", "--size", "32", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "cli" / "rgb").glob("*.png"))) == 3
    assert (tmp_path / "cli" / "dataset.json").is_file()


def test_eyes_and_brows_are_weak_in_depth_but_the_nose_is_not():
    """Eyes/brows are painted with only a slight relief (paper Table 3: harder from depth than RGB)."""
    from scipy import ndimage

    s = generate_sample(11, 128, seed=4, pose=(0.0, 0.0, 0.0))
    depth, label = s["depth"], s["label"]

    def relief(name: str) -> float:
        part = label == SCHEME.index(name)
        ring = ndimage.binary_dilation(part, iterations=3) & ~part & (label == SCHEME.index("skin"))
        return float(depth[part].mean() - depth[ring].mean())

    for name in ("l_eye", "r_eye"):
        assert abs(relief(name)) < 0.006, name  # < 2 mm at depth.range 0.3 m
    for name in ("l_brow", "r_brow"):
        assert abs(relief(name)) < 0.02, name  # brow ridge: < 6 mm
    assert relief("nose") > 0.02
