"""`faceparse prepare lapa` / `prepare helen` on hand-built raw trees in the exact official formats."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from faceparse.cli import app
from faceparse.data.convert.helen import convert_helen, read_list, soft_maps_to_label
from faceparse.data.convert.lapa import convert_lapa
from faceparse.data.format import open_layout, read_label, write_depth
from fixtures_raw import HELEN_LISTS, LAPA_SIZES, make_helen, make_lapa


def test_lapa_native_sizes_and_landmarks(tmp_path):
    labels = make_lapa(tmp_path / "raw")
    out = tmp_path / "out"
    report = convert_lapa(tmp_path / "raw", out, workers=1)
    assert not report.bad
    lay = open_layout(out)
    assert lay.info.scheme == "lapa11" and lay.info.image_size is None  # sizes vary
    assert lay.split_ids("train") == ["train_000", "train_001"] and lay.split_ids("val") == ["val_000"]
    for split, sizes in LAPA_SIZES.items():
        for k, (w, h) in enumerate(sizes):
            sid = f"{split}_{k:03d}"
            np.testing.assert_array_equal(read_label(out / "label" / f"{sid}.png"), labels[sid])
            with Image.open(out / "rgb" / f"{sid}.jpg") as img:
                assert img.size == (w, h)
            # images are copied byte for byte, landmarks kept for alignment
            assert (out / "rgb" / f"{sid}.jpg").read_bytes() == (
                tmp_path / "raw" / split / "images" / f"{sid}.jpg"
            ).read_bytes()
            assert (out / "landmarks" / f"{sid}.txt").read_text().startswith("106\n")


def test_lapa_bad_label_size_reported(tmp_path):
    make_lapa(tmp_path / "raw", bad=True)
    runner = CliRunner()
    args = [
        "prepare",
        "lapa",
        "--root",
        str(tmp_path / "raw"),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "1",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    flat = "".join(r.output.split())  # rich wraps long lines
    assert "test/labels/test_bad.png:labelis31×30" in flat
    assert open_layout(tmp_path / "out").split_ids("test") == ["test_000"]
    assert runner.invoke(app, [*args, "--strict", "--overwrite"]).exit_code == 2


def test_helen_argmax_ties_lowest(tmp_path):
    expected = make_helen(tmp_path / "raw")
    out = tmp_path / "out"
    report = convert_helen(tmp_path / "raw", out, workers=1)
    assert not report.bad
    lay = open_layout(out)
    assert lay.split_ids("train") == HELEN_LISTS["exemplars.txt"] and lay.split_ids("test") == ["107635070_1"]
    for name, exp in expected.items():
        got = read_label(out / "label" / f"{name}.png")
        np.testing.assert_array_equal(got, exp)
        assert got[0, 0] == 0 and (got[4:6] == 3).all() and (got[-4:] == 10).all()


def test_soft_maps_argmax_by_hand():
    maps = np.zeros((11, 1, 3), np.uint8)
    maps[2, 0, 0] = 9
    maps[5, 0, 1], maps[4, 0, 1] = 7, 7  # tie → 4
    np.testing.assert_array_equal(soft_maps_to_label(maps), [[2, 4, 0]])


def test_helen_drop_hair_clears_labels_and_depth(tmp_path):
    expected = make_helen(tmp_path / "raw")
    out = tmp_path / "out"
    name = "100032540_1"
    convert_helen(tmp_path / "raw", out, workers=1)
    write_depth(out / "depth" / f"{name}.png", np.full((32, 40), 0.5, np.float32))
    r = CliRunner().invoke(
        app,
        [
            "prepare",
            "helen",
            "--root",
            str(tmp_path / "raw"),
            "--out",
            str(out),
            "--drop-hair",
            "--overwrite",
            "--workers",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    got = read_label(out / "label" / f"{name}.png")
    hair = expected[name] == 10
    assert hair.any() and (got[hair] == 0).all() and (got != 10).all()
    np.testing.assert_array_equal(got[~hair], expected[name][~hair])
    depth = np.asarray(Image.open(out / "depth" / f"{name}.png"))
    assert (depth[hair] == 0).all() and (depth[~hair] > 0).all()
    dropped = np.asarray(Image.open(out / "dropped" / f"{name}.png"))
    np.testing.assert_array_equal(dropped > 0, hair)
    assert open_layout(out).info.name == "Helen-D"


def test_helen_list_format(tmp_path):
    (tmp_path / "l.txt").write_text("1 , 100032540_1\n2 , 10405146_1\n\n")
    assert read_list(tmp_path / "l.txt") == [(1, "100032540_1"), (2, "10405146_1")]
    (tmp_path / "bad.txt").write_text("1 100032540_1\n")
    r = CliRunner().invoke(app, ["prepare", "helen", "--root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "images" in r.output


def test_helen_list_names_outside_root_are_skipped(tmp_path):
    """Issue 11: list names are plain file stems; '..' or absolute names read and wrote outside."""
    raw, out, victim = tmp_path / "raw", tmp_path / "out", tmp_path / "victim"
    make_helen(raw)
    name = HELEN_LISTS["exemplars.txt"][0]
    (victim / "v").mkdir(parents=True)  # lets '../../victim/v/../..' resolve as well
    shutil.copy(raw / "images" / f"{name}.jpg", victim / "v.jpg")
    for k in range(11):  # a complete sample, so that following the names would succeed
        shutil.copy(raw / "labels" / name / f"{name}_lbl{k:02d}.png", victim / f"v_lbl{k:02d}.png")
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in victim.rglob("*")}
    lst = raw / "exemplars.txt"
    absolute, dotdot = str(victim / "v"), "../../victim/v"
    lst.write_text(lst.read_text() + f"3 , {absolute}\n4 , {dotdot}\n")
    args = ["prepare", "helen", "--root", str(raw), "--out", str(out), "--workers", "1", "--overwrite"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in victim.rglob("*")} == before
    bad = {b["id"]: b for b in json.loads((out / "prepare_report.json").read_text())["bad"]}
    assert set(bad) == {absolute, dotdot}
    assert bad[absolute]["path"] == str(lst) and "line 3" in bad[absolute]["problem"]
    assert "not a plain file stem" in bad[dotdot]["problem"] and "line 4" in bad[dotdot]["problem"]
    assert open_layout(out).split_ids("train") == HELEN_LISTS["exemplars.txt"]
    r = CliRunner().invoke(app, [*args, "--strict"])
    assert r.exit_code == 2 and "exemplars.txt" in r.output
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in victim.rglob("*")} == before


def test_helen_list_not_utf8_is_named(tmp_path):
    make_helen(tmp_path / "raw")
    lst = tmp_path / "raw" / "tuning.txt"
    lst.write_bytes(b"1 , caf\xe9\n")
    r = CliRunner().invoke(
        app, ["prepare", "helen", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "o")]
    )
    flat = "".join(r.output.split())
    assert r.exit_code == 2 and "tuning.txt:notUTF-8text:byte0xe9atoffset7(line1)" in flat
    lst.write_bytes(b"\xef\xbb\xbf1 , 1051618982_1\n")  # a BOM is dropped
    assert read_list(lst) == [(1, "1051618982_1")]


def test_lapa_file_stem_that_is_not_an_id_is_skipped(tmp_path):
    make_lapa(tmp_path / "raw")
    images = tmp_path / "raw" / "train" / "images"
    shutil.copy(images / "train_000.jpg", images / "evil\nname.jpg")  # would split into two ids
    shutil.copy(images.parent / "labels" / "train_000.png", images.parent / "labels" / "evil\nname.png")
    report = convert_lapa(tmp_path / "raw", tmp_path / "out", workers=1)
    assert [(o.sid, o.path) for o in report.bad] == [("evil\nname", str(images / "evil\nname.jpg"))]
    assert "control character" in report.bad[0].problem
    assert open_layout(tmp_path / "out").split_ids("train") == ["train_000", "train_001"]
    assert not list((tmp_path / "out" / "rgb").glob("evil*"))
