"""The on-disk dataset format: round trips, depth encoding, errors naming the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceparse.data.encoding import MAX16, nearness_to_uint16
from faceparse.data.format import (
    DatasetInfo,
    DepthInfo,
    ReleasedLayout,
    open_layout,
    read_depth,
    read_id_list,
    read_info,
    read_label,
    read_rgb,
    write_info,
    write_sample,
    write_split,
)
from faceparse.utils.io import DataError, atomic_path, read_text


def test_sample_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    label = rng.integers(0, 13, (6, 5)).astype(np.uint8)
    depth = rng.random((6, 5)).astype(np.float32)
    depth[0, 0] = 0.0
    write_sample(tmp_path, "a", rgb=rgb, depth=depth, label=label, meta={"k": 1})
    depth[0, 1] = 1e-6  # rounds to 0 but is a surface point: must stay > 0
    write_sample(tmp_path, "a", depth=depth)
    np.testing.assert_array_equal(read_rgb(tmp_path / "rgb" / "a.png"), rgb)
    np.testing.assert_array_equal(read_label(tmp_path / "label" / "a.png"), label)
    back = read_depth(tmp_path / "depth" / "a.png")
    assert back.dtype == np.float32
    surface = np.ones_like(depth, dtype=bool)
    surface[0, 1] = False
    np.testing.assert_allclose(back[surface], depth[surface], atol=0.5 / MAX16 + 1e-7)  # half a step
    assert back[0, 0] == 0.0 and back[0, 1] == 1 / MAX16  # the smallest surface value, not background
    with Image.open(tmp_path / "depth" / "a.png") as img:
        assert np.asarray(img).max() > 255  # really 16-bit


def test_eight_bit_depth_reads_as_fraction_of_255(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 51, 255]], np.uint8)).save(tmp_path / "d.png")
    np.testing.assert_allclose(read_depth(tmp_path / "d.png"), [[0.0, 0.2, 1.0]])


def test_nearness_outside_unit_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="nearness"):
        nearness_to_uint16(np.array([1.5], np.float32))


def test_truncated_png_error_names_the_file(tmp_path: Path) -> None:
    write_sample(tmp_path, "a", label=np.zeros((64, 64), np.uint8) + 3)
    path = tmp_path / "label" / "a.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated") as err:
        read_label(path)
    assert err.value.path == path and str(path) in str(err.value)


def test_rgb_label_is_rejected(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "l.png")
    with pytest.raises(DataError, match="single-channel"):
        read_label(tmp_path / "l.png")


def test_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found") as err:
        read_rgb(tmp_path / "nope.png")
    assert err.value.path == tmp_path / "nope.png"


def test_dataset_json_round_trip_and_validation(tmp_path: Path) -> None:
    info = DatasetInfo(name="x", scheme="lapa11", depth=DepthInfo(range=3.0, unit="dm", coverage="partial"))
    info.counts = {"train": 2}
    write_info(tmp_path, info)
    assert read_info(tmp_path) == info
    for bad, match in (
        ({"name": "x"}, "malformed"),
        ({"name": "x", "scheme": "nope"}, "unknown label scheme"),
        ({"name": "x", "scheme": "lapa11", "depth": {"coverage": "some"}}, "coverage"),
        ({"name": "x", "scheme": "lapa11", "format_version": 99}, "newer"),
    ):
        (tmp_path / "dataset.json").write_text(__import__("json").dumps(bad))
        with pytest.raises(DataError, match=match) as err:
            read_info(tmp_path)
        assert err.value.path == tmp_path / "dataset.json"


def test_split_files(tmp_path: Path) -> None:
    write_split(tmp_path, "train", ["b", "a"])
    assert read_id_list(tmp_path / "splits" / "train.txt") == ["b", "a"]
    (tmp_path / "dup.txt").write_text("a\n# comment\n\nb\na\n")
    with pytest.raises(DataError, match="duplicate ids in split: a"):
        read_id_list(tmp_path / "dup.txt")


def test_open_layout_kinds_and_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="an empty folder"):
        open_layout(tmp_path)
    with pytest.raises(DataError, match="not found"):
        open_layout(tmp_path / "missing")
    released = tmp_path / "LaPa-D"
    (released / "depth").mkdir(parents=True)
    (released / "train_list.txt").write_text("depth/x1.png\ny2\n")
    layout = open_layout(released)
    assert isinstance(layout, ReleasedLayout) and layout.scheme.name == "lapa11"
    assert layout.split_ids("train") == ["x1", "y2"]
    with pytest.raises(DataError, match="split 'val' missing; available: train") as err:
        layout.split_ids("val")
    assert err.value.path == released / "val_list.txt"


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_png_missing_its_last_chunk_is_truncated(tmp_path: Path) -> None:
    write_sample(tmp_path, "a", label=np.zeros((8, 8), np.uint8))
    path = tmp_path / "label" / "a.png"
    path.write_bytes(path.read_bytes()[:-12])  # pixel data intact, IEND cut off: PIL alone accepts this
    with pytest.raises(DataError, match="truncated PNG") as err:
        read_label(path)
    assert err.value.path == path


# --- ids and text files (issue 11: ids outside the dataset, text that is not UTF-8) ----------------------


@pytest.mark.parametrize(
    "bad, why",
    [
        ("../../../outside", "'/'"),
        ("/etc/passwd", "'/'"),
        ("sub/a", "'/'"),
        ("..", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("a\\b", "backslash"),
        ("C:a", "':'"),
        ("a\x00b", "control character"),
        ("x" * 201, "longer than 200 bytes"),
    ],
)
def test_split_ids_must_be_plain_stems(tmp_path: Path, bad: str, why: str) -> None:
    write_sample(tmp_path, "a", label=np.zeros((8, 8), np.uint8))
    write_info(tmp_path, DatasetInfo(name="x", scheme="lapa11"))
    split = tmp_path / "splits" / "train.txt"
    split.parent.mkdir()
    split.write_text(f"a\n{bad}\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"line 2: id {re.escape(repr(bad))}.*{re.escape(why)}") as err:
        open_layout(tmp_path).split_ids("train")
    assert err.value.path == split
    with pytest.raises(DataError, match="not a plain file stem") as err:
        open_layout(tmp_path).paths(bad)  # ids from elsewhere than a split file are checked too
    assert err.value.path == tmp_path


def test_every_bad_id_of_a_split_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("ok\n../x\n# comment\n/abs\nfine_2\n")
    with pytest.raises(
        DataError, match=r"2 ids are not plain file stems.*line 2: id '\.\./x'.*line 4: id '/abs'"
    ):
        read_id_list(path)
    path.write_text("ok\nname with space\n12345\n100032540_1\na..b\n")  # legitimate stems
    assert read_id_list(path) == ["ok", "name with space", "12345", "100032540_1", "a..b"]


def test_released_list_entries_must_stay_in_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "Helen-D"
    (root / "depth").mkdir(parents=True)
    (root / "train_list.txt").write_text("depth/a.png\nb.png\nc\nsub\\d.png\n")
    assert open_layout(root).split_ids("train") == ["a", "b", "c", "d"]  # a path's stem is the id
    for bad in ("../../x.png", "/abs/depth/x.png", "depth/../../x.png", "depth/.png"):
        (root / "train_list.txt").write_text(f"a\n{bad}\n")
        with pytest.raises(DataError, match=rf"line 2: {re.escape(repr(bad))}") as err:
            open_layout(root).split_ids("train")
        assert err.value.path == root / "train_list.txt"


def test_split_file_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_bytes(b"a\nb\xe9\nc\n")  # Latin-1 'e acute'
    with pytest.raises(DataError, match=r"not UTF-8 text: byte 0xe9 at offset 3 \(line 2\)") as err:
        read_id_list(path)
    assert err.value.path == path
    path.write_bytes("a\nb\n".encode("utf-16"))  # Windows' "Unicode"
    with pytest.raises(DataError, match="UTF-16"):
        read_id_list(path)


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_bytes(b"\xef\xbb\xbfa\nb\n")
    assert read_id_list(path) == ["a", "b"]
    assert read_text(path) == "a\nb\n"
    (tmp_path / "dataset.json").write_bytes(b'\xef\xbb\xbf{"name": "x", "scheme": "lapa11"}')
    assert read_info(tmp_path).name == "x"
    path.write_bytes(b"\xef\xbb\xbfa\n\xff\n")  # offsets count the BOM's 3 bytes
    with pytest.raises(DataError, match=r"byte 0xff at offset 5 \(line 2\)"):
        read_text(path)


def test_data_error_survives_pickling_with_its_path() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(DataError(Path("/d/label/a.png"), "bad id")))
    assert (
        err.path == Path("/d/label/a.png")
        and err.problem == "bad id"
        and str(err) == "/d/label/a.png: bad id"
    )


MISSING = object()


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ([], "dataset.json must hold a JSON object, got list"),
        ({"name": MISSING}, "malformed field 'name': missing"),
        ({"name": 3, "scheme": "lapa11"}, "malformed field 'name': must be a non-empty string, got 3"),
        ({"name": "x", "scheme": ["lapa11"]}, "malformed field 'scheme': must be a label scheme name"),
        ({"image_size": "512"}, r"malformed field 'image_size': must be \[width, height\] .*, got '512'"),
        ({"image_size": [512, 0]}, r"malformed field 'image_size': .*, got \[512, 0\]"),
        ({"image_size": [512.5, 512]}, r"malformed field 'image_size'"),
        ({"counts": ["train"]}, "malformed field 'counts': must be a mapping of split → sample count"),
        ({"counts": {"train": "many"}}, r"malformed field 'counts': .*, got \{'train': 'many'\}"),
        ({"counts": {"train": -1}}, "malformed field 'counts'"),
        ({"provenance": "synth"}, "malformed field 'provenance': must be a mapping, got 'synth'"),
        ({"format_version": "1"}, "malformed field 'format_version': must be an integer ≥ 1, got '1'"),
        ({"depth": "nearness16"}, "malformed field 'depth': must be a mapping"),
        ({"depth": {"rnage": 3.0}}, "malformed field 'depth.rnage': not a depth field"),
        ({"depth": {"range": "far"}}, "malformed field 'depth.range': must be a positive number or null"),
        ({"depth": {"range": -2}}, "malformed field 'depth.range'"),
        ({"depth": {"encoding": 16}}, "malformed field 'depth.encoding'"),
        (
            {"depth": {"coverage": True}},
            "malformed field 'depth.coverage': must be one of all, partial, none",
        ),
    ],
)
def test_a_malformed_dataset_json_field_is_named(tmp_path: Path, fields, named) -> None:
    if isinstance(fields, dict):
        fields = {k: v for k, v in {"name": "x", "scheme": "lapa11", **fields}.items() if v is not MISSING}
    (tmp_path / "dataset.json").write_text(json.dumps(fields))
    with pytest.raises(DataError, match=named) as err:
        open_layout(tmp_path)
    assert err.value.path == tmp_path / "dataset.json"
