"""`faceparse check-data` / `stats` and faceparse.data.check: every bad file is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceparse.cli import app
from faceparse.data.check import check_dataset
from faceparse.data.format import DatasetInfo, DepthInfo, write_info, write_label, write_sample, write_split

H, W = 16, 20
runner = CliRunner()


def _label(i: int) -> np.ndarray:
    """Hand-built: left half background, right half skin, a 2x3 l_eye block; sample 0 also has hair."""
    label = np.zeros((H, W), np.uint8)
    label[:, W // 2 :] = 1
    label[4:6, 12:15] = 4
    if i == 0:
        label[0, :4] = 12
    return label


def make_dataset(root: Path, n: int = 6, coverage: str = "all") -> list[str]:
    ids = [f"s{i}" for i in range(n)]
    rng = np.random.default_rng(0)
    for i, sid in enumerate(ids):
        label = _label(i)
        write_sample(
            root,
            sid,
            rgb=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            depth=np.where(label > 0, 0.5, 0.0).astype(np.float32),
            label=label,
        )
    write_split(root, "train", ids[: n - 2])
    write_split(root, "val", ids[n - 2 : n - 1])
    write_split(root, "test", ids[n - 1 :])
    counts = {"train": n - 2, "val": 1, "test": 1, "total": n}
    write_info(
        root,
        DatasetInfo(
            name="tiny",
            scheme="celebamask13",
            image_size=[W, H],
            counts=counts,
            depth=DepthInfo(coverage=coverage),
        ),
    )
    return ids


def _messages(report) -> dict[Path, list[str]]:
    out: dict[Path, list[str]] = {}
    for p in report.problems:
        out.setdefault(p.path, []).append(p.message)
    return out


def test_clean_dataset_passes_with_exact_counts(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    report = check_dataset(tmp_path, workers=2)
    assert report.ok and report.problems == []
    assert report.table1_row() == {"train": 4, "val": 1, "test": 1, "total": 6}
    pixels, images = report.class_pixels(), report.class_images()
    assert pixels.shape == (13,)
    assert pixels[4] == 6 * 6 and images[4] == 6  # l_eye: 2x3 px in every image
    assert pixels[12] == 4 and images[12] == 1  # hair: only sample 0
    assert pixels.sum() == 6 * H * W and report.ignored_pixels() == 0
    assert report.class_pixels("val")[4] == 6
    assert report.class_shares().sum() == pytest.approx(1.0)
    assert report.depth_counts == {"train": 4, "val": 1, "test": 1}

    result = runner.invoke(app, ["check-data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "OK: 6 samples" in result.output and "l_eye" in result.output


def test_truncated_png_and_out_of_range_label_fail_naming_both(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    rgb = tmp_path / "rgb" / "s1.png"
    rgb.write_bytes(rgb.read_bytes()[:100])
    bad = _label(2)
    bad[0, 0] = 200
    write_label(tmp_path / "label" / "s2.png", bad)
    result = runner.invoke(app, ["check-data", str(tmp_path)])
    assert result.exit_code != 0
    assert str(rgb) in result.output and "truncated" in result.output
    assert str(tmp_path / "label" / "s2.png") in result.output and "200" in result.output


def test_every_bad_file_is_reported_not_just_the_first(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    for sid in ("s0", "s3", "s5"):
        path = tmp_path / "label" / f"{sid}.png"
        path.write_bytes(path.read_bytes()[:-20])  # cut into the image data
    report = check_dataset(tmp_path)
    named = {p.path for p in report.errors}
    assert named == {tmp_path / "label" / f"{sid}.png" for sid in ("s0", "s3", "s5")}


def test_structural_problems_are_each_named(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "label" / "s1.png").unlink()  # missing partner
    write_sample(tmp_path, "s2", depth=np.full((H - 2, W), 0.5, np.float32))  # size mismatch
    (tmp_path / "splits" / "test.txt").write_text("s5\nghost\n")  # split entry without files
    (tmp_path / "splits" / "val.txt").write_text("s4\ns0\n")  # s0 is also in train
    msgs = _messages(check_dataset(tmp_path))
    assert any("missing label for sample 's1'" in m for m in msgs[tmp_path / "label" / "s1.png"])
    assert any("size 20x14 differs from rgb 20x16" in m for m in msgs[tmp_path / "depth" / "s2.png"])
    assert any("'ghost' does not exist" in m for m in msgs[tmp_path / "splits" / "test.txt"])
    assert any("also in split 'train'" in m and "'s0'" in m for m in msgs[tmp_path / "splits" / "val.txt"])
    json_msgs = msgs[tmp_path / "dataset.json"]
    assert any("counts.test is 1 but test.txt lists 2" in m for m in json_msgs)
    assert any("counts.total is 6 but the splits list 7" in m for m in json_msgs)


def test_missing_split_empty_split_and_empty_folders(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "splits" / "val.txt").unlink()
    (tmp_path / "splits" / "test.txt").write_text("")
    msgs = _messages(check_dataset(tmp_path))
    assert msgs[tmp_path / "splits" / "val.txt"] == ["missing split 'val'"]
    assert "is empty" in msgs[tmp_path / "splits" / "test.txt"][0]

    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["check-data", str(empty)])
    assert result.exit_code == 1 and "empty folder" in result.output and str(empty) in result.output

    bare = tmp_path / "bare"
    (bare / "rgb").mkdir(parents=True)
    write_split(bare, "train", ["a"])
    write_info(bare, DatasetInfo(name="bare", scheme="lapa11"))
    msgs = _messages(check_dataset(bare, splits=["train"]))
    assert msgs[bare / "rgb"] == ["empty folder: rgb/ holds no files"]
    assert msgs[bare / "label"] == ["missing label folder"]


def test_depth_coverage_decides_whether_missing_depth_is_an_error(tmp_path: Path) -> None:
    strict, partial = tmp_path / "strict", tmp_path / "partial"
    for root, coverage in ((strict, "all"), (partial, "partial")):
        make_dataset(root, coverage=coverage)
        (root / "depth" / "s3.png").unlink()
    msgs = _messages(check_dataset(strict))
    assert "missing depth for sample 's3'" in msgs[strict / "depth" / "s3.png"][0]
    report = check_dataset(partial)
    assert report.ok and report.depth_counts["train"] == 3


def test_orphans_and_image_size_and_split_option(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "rgb" / "stray.png")
    report = check_dataset(tmp_path)
    assert report.ok and any("stray.png" in p.message for p in report.warnings)
    info = json.loads((tmp_path / "dataset.json").read_text())
    info["image_size"] = [32, 32]
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    report = check_dataset(tmp_path, splits=["val"])
    assert report.checked == 1 and list(report.split_counts) == ["val"]
    assert [str(p) for p in report.errors] == [
        f"{tmp_path / 'rgb' / 's4.png'}: size 20x16 differs from dataset.json image_size 32x32"
    ]


def test_released_layout_is_checked(tmp_path: Path) -> None:
    root = tmp_path / "Helen-D"
    (root / "depth").mkdir(parents=True)
    Image.fromarray(np.full((H, W), 9, np.uint8)).save(root / "depth" / "a.png")
    (root / "depth" / "b.png").write_bytes(b"not a png")
    (root / "train_list.txt").write_text("a\nb\n")
    report = check_dataset(root, splits=["train"])
    assert report.layout == "released" and report.scheme.name == "helen11"
    assert [p.path for p in report.errors] == [root / "depth" / "b.png"]
    assert report.depth_counts == {"train": 1}


def test_stats_prints_the_table1_row(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=8)
    result = runner.invoke(app, ["stats", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Train set" in result.output and "Validation set" in result.output
    row = next(line for line in result.output.splitlines() if tmp_path.name[:6] in line and "6" in line)
    assert [c.strip() for c in row.strip("│ ").split("│")][1:] == ["6", "1", "1", "8"]
    assert "hair" in result.output


def test_ids_outside_the_dataset_are_reported_not_read(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_dataset(root)
    outside = tmp_path / "outside"  # a whole valid sample outside the dataset folder
    write_sample(outside, "x", rgb=np.zeros((H, W, 3), np.uint8), label=_label(1))
    (root / "splits" / "val.txt").write_text(f"s4\n../../outside/rgb/x\n{outside}/label/x\n")
    report = check_dataset(root)
    msgs = _messages(report)[root / "splits" / "val.txt"]
    assert not report.ok
    assert any(
        "line 2: id '../../outside/rgb/x'" in m and f"line 3: id '{outside}/label/x'" in m for m in msgs
    )
    result = runner.invoke(app, ["check-data", str(root)])  # an absolute id crashed check-data
    assert result.exit_code == 1 and "OK" not in result.output
    assert "notplainfilestems" in "".join(result.output.split())  # rich wraps long lines


def test_split_file_not_utf8_is_reported_not_raised(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "splits" / "test.txt").write_bytes(b"s5\n\xff\xfe\n")
    report = check_dataset(tmp_path)
    assert any("not UTF-8" in m for m in _messages(report)[tmp_path / "splits" / "test.txt"])
    result = runner.invoke(app, ["check-data", str(tmp_path)])
    assert result.exit_code == 1 and "not UTF-8" in result.output
