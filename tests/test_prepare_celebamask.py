"""`faceparse prepare celebamask-hq` on hand-built raw trees in the exact official format."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from faceparse.cli import app
from faceparse.data.convert.celebamask import convert_celebamask, read_part_mask
from faceparse.data.format import open_layout, read_label, read_rgb
from faceparse.labels import get_scheme
from faceparse.utils.io import DataError
from fixtures_raw import CELEBA_PLAIN, CELEBA_SAMPLE0, make_celebamask

# Written out independently of faceparse.labels: the official CelebAMask-HQ merge order (FACTS §2).
OFFICIAL_ORDER = (
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
DROPPED_IN_13 = {"eye_g", "hat", "ear_r", "neck_l", "neck", "cloth"}


def expected_label(parts, scheme: str, size: int = 32) -> np.ndarray:
    s = get_scheme(scheme)
    label = np.zeros((size, size), np.uint8)
    for part in OFFICIAL_ORDER:
        if part not in parts or (scheme == "celebamask13" and part in DROPPED_IN_13):
            continue
        m = parts[part]
        if m.value <= 127:
            continue
        r0, r1, c0, c1 = m.rect
        label[r0:r1, c0:c1] = s.index(part)
    return label


@pytest.mark.parametrize("scheme", ["celebamask13", "celebamask19"])
def test_labels_and_splits(tmp_path, scheme):
    raw = make_celebamask(tmp_path / "raw")
    out = tmp_path / "out"
    report = convert_celebamask(raw, out, scheme=scheme, size=32, workers=1)
    assert not report.bad
    lay = open_layout(out)
    assert lay.info.scheme == scheme and lay.info.image_size == [32, 32]
    assert {s: lay.split_ids(s) for s in ("train", "val", "test")} == {
        "train": ["0", "1"],
        "val": ["2"],
        "test": ["3", "4"],
    }
    assert lay.info.counts == {"train": 2, "val": 1, "test": 2}
    got0 = read_label(out / "label" / "0.png")
    np.testing.assert_array_equal(got0, expected_label(CELEBA_SAMPLE0, scheme))
    np.testing.assert_array_equal(read_label(out / "label" / "3.png"), expected_label(CELEBA_PLAIN, scheme))
    s = get_scheme(scheme)
    # merge order: hair overwrites skin; l_eye (1-bit mask) overwrites the glasses
    assert got0[5, 10] == s.index("hair") and got0[10, 20] == s.index("l_eye")
    if scheme == "celebamask19":
        assert (
            got0[1, 10] == s.index("hat")
            and got0[31, 15] == s.index("cloth")
            and got0[10, 5] == s.index("eye_g")
        )
    else:  # dropped parts: hair stays under the hat, neck/cloth → background, glasses → skin
        assert got0[1, 10] == s.index("hair") and got0[31, 15] == 0 and got0[10, 5] == s.index("skin")
    assert got0[23, 15] == s.index("u_lip") or got0[23, 15] == s.index(
        "skin"
    )  # mouth gray 100 is not painted
    assert (got0 != s.index("mouth")).all()
    assert read_rgb(out / "rgb" / "0.jpg").shape == (32, 32, 3)  # 64² image resized to the label size


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "1", "P"])
def test_mask_modes_read_alike(tmp_path, mode):
    from fixtures_raw import PartMask, save_mask

    save_mask(tmp_path / "m.png", PartMask(mode, (2, 5, 3, 9)), 12)
    m = read_part_mask(tmp_path / "m.png")
    want = np.zeros((12, 12), bool)
    want[2:5, 3:9] = True
    np.testing.assert_array_equal(m, want)


def test_bad_samples_reported_and_rest_converted(tmp_path):
    raw = make_celebamask(tmp_path / "raw", bad=True)
    out = tmp_path / "out"
    report = convert_celebamask(raw, out, scheme="celebamask19", size=32, workers=1)
    bad = {o.sid: o for o in report.bad}
    assert set(bad) == {"3", "4", "5", "6"}
    assert bad["3"].path.endswith("3.jpg") and "truncated" in bad["3"].problem
    assert bad["4"].path.endswith("00004_nose.png") and "64×64, expected 32×32" in bad["4"].problem
    assert bad["5"].path.endswith("5.jpg") and "not found" in bad["5"].problem
    assert bad["6"].path.endswith("list_eval_partition.txt") and "999999.jpg" in bad["6"].problem
    lay = open_layout(out)
    assert lay.split_ids("train") == ["0", "1"] and lay.split_ids("test") == []
    saved = json.loads((out / "prepare_report.json").read_text())
    assert {b["id"] for b in saved["bad"]} == {"3", "4", "5", "6"}
    assert report.counts()["test"] == {"found": 2, "written": 0, "skipped": 0, "bad": 2}
    assert report.counts()["train"] == {"found": 3, "written": 2, "skipped": 0, "bad": 1}


def test_cli_exit_codes_and_resume(tmp_path):
    raw = make_celebamask(tmp_path / "raw", bad=True)
    out = tmp_path / "out"
    args = [
        "prepare",
        "celebamask-hq",
        "--root",
        str(raw),
        "--out",
        str(out),
        "--size",
        "32",
        "--workers",
        "1",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    flat = "".join(r.output.split())  # rich wraps long lines
    assert "4sample(s)skipped" in flat and "00004_nose.png:maskis64×64" in flat
    label0 = out / "label" / "0.png"
    before = os.stat(label0).st_mtime_ns
    r2 = CliRunner().invoke(app, args)  # resume: existing outputs are not rewritten
    assert r2.exit_code == 0 and os.stat(label0).st_mtime_ns == before
    report = convert_celebamask(raw, out, size=32, workers=1)
    assert report.counts()["train"]["skipped"] == 2 and report.counts()["train"]["written"] == 0
    r3 = CliRunner().invoke(app, [*args, "--strict"])
    assert r3.exit_code == 2 and "--strict" in r3.output


def test_resume_refuses_other_options(tmp_path):
    raw = make_celebamask(tmp_path / "raw")
    out = tmp_path / "out"
    convert_celebamask(raw, out, scheme="celebamask13", size=32, workers=1)
    with pytest.raises(DataError, match="other options.*scheme"):
        convert_celebamask(raw, out, scheme="celebamask19", size=32, workers=1)


def test_parallel_matches_serial(tmp_path):
    raw = make_celebamask(tmp_path / "raw", n=5)
    convert_celebamask(raw, tmp_path / "a", size=32, workers=1)
    convert_celebamask(raw, tmp_path / "b", size=32, workers=2)
    for sid in "01234":
        np.testing.assert_array_equal(
            read_label(tmp_path / "a" / "label" / f"{sid}.png"),
            read_label(tmp_path / "b" / "label" / f"{sid}.png"),
        )
    assert (tmp_path / "a" / "splits" / "train.txt").read_text() == (
        tmp_path / "b" / "splits" / "train.txt"
    ).read_text()


def test_missing_mapping_is_named(tmp_path):
    raw = make_celebamask(tmp_path / "raw")
    (raw / "CelebA-HQ-to-CelebA-mapping.txt").unlink()
    with pytest.raises(DataError, match="CelebA-HQ-to-CelebA-mapping.txt: mapping file not found"):
        convert_celebamask(raw, tmp_path / "out", size=32, workers=1)


def test_mapping_and_partition_not_utf8_are_named(tmp_path):
    for name in ("CelebA-HQ-to-CelebA-mapping.txt", "list_eval_partition.txt"):
        raw = make_celebamask(tmp_path / name / "raw")
        path = raw / name
        path.write_bytes(path.read_bytes() + b"\xff\n")
        with pytest.raises(DataError, match="not UTF-8 text") as err:
            convert_celebamask(raw, tmp_path / name / "out", size=32, workers=1)
        assert err.value.path == path
        r = CliRunner().invoke(
            app, ["prepare", "celebamask-hq", "--root", str(raw), "--out", str(raw.parent / "o")]
        )
        assert r.exit_code == 2 and name in "".join(r.output.split())


def test_mapping_and_partition_with_a_bom(tmp_path):
    raw = make_celebamask(tmp_path / "raw")
    for name in ("CelebA-HQ-to-CelebA-mapping.txt", "list_eval_partition.txt"):
        (raw / name).write_bytes(b"\xef\xbb\xbf" + (raw / name).read_bytes())  # Windows editors add one
    report = convert_celebamask(raw, tmp_path / "out", size=32, workers=1)
    assert not report.bad and open_layout(tmp_path / "out").split_ids("train") == ["0", "1"]


def test_mapping_rows_that_are_not_plain_names(tmp_path):
    raw = make_celebamask(tmp_path / "raw")
    mapping = raw / "CelebA-HQ-to-CelebA-mapping.txt"
    partition = raw / "list_eval_partition.txt"
    mapping.write_text(mapping.read_text() + "7 1007 ../../000008.jpg\n")
    partition.write_text(partition.read_text() + "../../000008.jpg 0\n")
    report = convert_celebamask(raw, tmp_path / "out", size=32, workers=1)
    assert [(o.sid, o.path) for o in report.bad] == [("7", str(mapping))]
    assert "line 7" in report.bad[0].problem and "'../../000008.jpg'" in report.bad[0].problem
    mapping.write_text(mapping.read_text() + "\u00b2 1 000002.jpg\n")  # str.isdigit() accepts '²'
    with pytest.raises(DataError, match="line 8: expected 'idx orig_idx orig_file'") as err:
        convert_celebamask(raw, tmp_path / "out", size=32, workers=1)
    assert err.value.path == mapping
