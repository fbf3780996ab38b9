"""`faceparse pack` and faceparse.data.packed: packed samples equal the folder's bit for bit, resume,
atomic chunks, size errors, `check-data` on a pack, and training and evaluation from a packed root."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import faceparse.data.packed as packed_module
from faceparse.cli import app
from faceparse.data.check import check_dataset
from faceparse.data.dataset import FaceParsingDataset
from faceparse.data.format import open_layout, write_depth, write_sample
from faceparse.data.packed import PACKED_JSON, chunk_path, pack_dataset, read_manifest
from faceparse.data.transforms import build_transform, resize_sample
from faceparse.utils.io import DataError
from tiny import disc_dataset, tiny_overrides

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 disc heads at 32² (train 8, val 2); sample 3 has no depth file, 2 ignored pixels per label."""
    return disc_dataset(tmp_path_factory.mktemp("packed") / "png", missing_depth=[3], ignored=2)


@pytest.fixture(scope="module")
def packed(folder: Path) -> Path:
    """``folder`` packed in chunks of 3 (train: 3 + 3 + 2, val: 2): read-only for the tests."""
    out = folder.parent / "packed"
    pack_dataset(folder, out, chunk_size=3, workers=2)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.npy"))}


def _same_sample(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == b[key].dtype and value.shape == b[key].shape, key
            assert np.array_equal(value, b[key]), key
        else:
            assert value == b[key], key


@pytest.mark.parametrize("fraction", [0.5, 1.0])
@pytest.mark.parametrize("split", ["train", "val"])
def test_packed_samples_equal_the_folders_bit_for_bit(folder, packed, split, fraction):
    png = FaceParsingDataset(folder, split, depth_fraction=fraction, seed=3)
    npy = FaceParsingDataset(packed, split, depth_fraction=fraction, seed=3)
    assert npy.ids == png.ids and npy.depth_ids == png.depth_ids
    assert npy.depth_indices() == png.depth_indices()
    assert npy.layout.root == packed and npy.scheme.name == png.scheme.name == "celebamask13"
    assert npy.layout.info.depth == png.layout.info.depth  # engine/loop.py records range and unit
    for i in range(len(png)):
        _same_sample(png.load(i), npy.load(i))
    if split == "train":
        assert "s003" in png.ids and not npy.load(png.ids.index("s003"))["has_depth"]  # no depth file
    # the tensors a training step sees, through a random augmentation: the same too
    transform = build_transform("bisenet", 24, png.scheme, train=True)
    png.transform = npy.transform = transform
    for i in range(len(png)):
        a, b = png[i], npy[i]
        for key in ("rgb", "depth", "label", "has_depth"):
            assert torch.equal(a[key], b[key]), key


def test_manifest_and_layout(folder, packed):
    manifest = json.loads((packed / PACKED_JSON).read_text())
    assert manifest["chunk_size"] == 3 and manifest["splits"]["train"]["chunks"] == 3
    assert manifest["splits"]["train"]["finished"] == [0, 1, 2]
    assert manifest["splits"]["train"]["arrays"]["depth"] == {"dtype": "uint16", "shape": ["n", 32, 32]}
    assert manifest["splits"]["train"]["ids"] == open_layout(folder).split_ids("train")
    last = np.load(chunk_path(packed, "train", "rgb", 2), mmap_mode="r")
    assert last.shape == (2, 32, 32, 3) and last.dtype == np.uint8
    # the depth array holds the PNG's 16-bit codes exactly; the sample without depth is 0 and flagged
    has_depth = np.load(chunk_path(packed, "train", "has_depth", 1))
    assert has_depth.tolist() == [False, True, True]  # s003, s004, s005
    assert not np.load(chunk_path(packed, "train", "depth", 1))[0].any()
    # a copy of dataset.json and the split files: the scheme and splits read from a packed root
    assert open_layout(packed).split_ids("val") == ["s008", "s009"]
    assert open_layout(packed).info.image_size == [32, 32]


def test_memmaps_open_lazily_and_are_never_pickled(packed):
    dataset = FaceParsingDataset(packed, "train")
    assert dataset._packed is not None and not dataset._packed._maps  # nothing opened in __init__
    dataset.load(4)
    assert set(dataset._packed._maps) == {("rgb", 1), ("depth", 1), ("label", 1)}
    copy = pickle.loads(pickle.dumps(dataset))
    assert not copy._packed._maps
    _same_sample(copy.load(4), dataset.load(4))


def test_dataloader_workers_reopen_the_maps(folder, packed):
    png = FaceParsingDataset(folder, "train", depth_fraction=0.5)
    npy = FaceParsingDataset(packed, "train", depth_fraction=0.5)
    npy.load(0)  # the parent has maps open: the workers must not depend on them
    batches = list(torch.utils.data.DataLoader(npy, batch_size=4, num_workers=2))
    expected = list(torch.utils.data.DataLoader(png, batch_size=4, num_workers=0))
    for a, b in zip(expected, batches, strict=True):
        assert a["id"] == b["id"]
        for key in ("rgb", "depth", "label", "has_depth"):
            assert torch.equal(a[key], b[key]), key


def test_resume_redoes_only_the_missing_chunk(folder, packed, tmp_path):
    out = tmp_path / "packed"
    pack_dataset(folder, out, chunk_size=3, workers=1)
    reference = _files(packed)
    assert _files(out) == reference
    kept = {p: p.stat().st_ino for p in out.rglob("*.npy") if "-00002" not in p.name}
    chunk_path(out, "train", "label", 2).unlink()  # the last chunk lost one file
    leftover = out / "train" / ".rgb-00002.npy.abcd1234.tmp.npy"  # and a killed write left its temporary
    leftover.write_bytes(b"partial")
    calls: list[tuple[int, int]] = []
    pack_dataset(folder, out, workers=1, on_progress=lambda done, total, info: calls.append((done, total)))
    assert calls[0] == (8, 10)  # train chunks 0 and 1 (6) and val (2) were kept
    assert calls[-1] == (10, 10)
    assert _files(out) == reference
    assert {p: p.stat().st_ino for p in kept} == kept  # finished chunks were not rewritten
    assert not leftover.exists()


def test_an_interrupted_pack_resumes_to_the_same_output(folder, packed, tmp_path, monkeypatch):
    out = tmp_path / "packed"
    real = packed_module._read_sample
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # in the middle of train's chunk 1
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(packed_module, "_read_sample", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack_dataset(folder, out, chunk_size=3, workers=1)
    assert read_manifest(out).splits["train"].finished == [0]
    assert not list(out.rglob(".*.tmp*"))  # the unfinished chunk's temporaries are gone
    assert not chunk_path(out, "train", "rgb", 1).exists()
    with pytest.raises(DataError, match="unfinished pack.*1 of 3 chunks.*faceparse pack"):
        FaceParsingDataset(out, "train")
    report = check_dataset(out)
    assert any("unfinished pack" in p.message and "to resume" in p.message for p in report.errors)

    monkeypatch.setattr(packed_module, "_read_sample", real)
    pack_dataset(folder, out, workers=1)
    assert _files(out) == _files(packed)


def test_eight_bit_depth_packs_to_the_same_nearness(tmp_path):
    data = disc_dataset(tmp_path / "png", n=4)
    values = np.arange(32 * 32, dtype=np.uint32).reshape(32, 32).astype(np.uint8)  # every 8-bit value
    Image.fromarray(values, mode="L").save(data / "depth" / "s001.png")
    pack_dataset(data, tmp_path / "packed")
    assert np.array_equal(
        np.load(chunk_path(tmp_path / "packed", "train", "depth", 0))[1], values.astype(np.uint16) * 257
    )
    png, npy = FaceParsingDataset(data, "train"), FaceParsingDataset(tmp_path / "packed", "train")
    for i in range(len(png)):
        _same_sample(png.load(i), npy.load(i))  # v / 255 == 257 v / 65535 in float32, exactly


def test_a_size_mismatch_names_the_file_and_size_resizes(folder, tmp_path):
    data = disc_dataset(tmp_path / "png", n=6)
    big = np.zeros((40, 48), np.uint8)
    big[10:30, 10:30] = 1
    depth = np.where(big > 0, 0.75, 0.0).astype(np.float32)
    write_sample(data, "s002", rgb=np.full((40, 48, 3), 90, np.uint8), depth=depth, label=big)
    with pytest.raises(
        DataError, match=r"rgb/s002\.png: size 48x40 differs from 32x32 .*split .train.*--size"
    ):
        pack_dataset(data, tmp_path / "packed", chunk_size=4)
    assert not (tmp_path / "packed").exists()  # refused before anything was written

    pack_dataset(data, tmp_path / "packed", chunk_size=4, size=24)
    png = FaceParsingDataset(data, "train")
    npy = FaceParsingDataset(tmp_path / "packed", "train")
    for i in range(len(png)):
        expected, got = resize_sample(png.load(i), 24), npy.load(i)
        assert np.array_equal(got["rgb"], expected["rgb"]) and np.array_equal(got["label"], expected["label"])
        assert np.abs(got["depth"] - expected["depth"]).max() <= 0.5 / 65535 + 1e-7
    assert open_layout(tmp_path / "packed").info.image_size == [24, 24]
    with pytest.raises(DataError, match="packed.json: was packed with --size 24, not with --size 16"):
        pack_dataset(data, tmp_path / "packed", size=16)


def test_missing_and_mis_sized_files_are_named_by_the_pack_and_the_dataset_alike(tmp_path):
    data = disc_dataset(tmp_path / "png", n=6)
    (data / "label" / "s001.png").unlink()
    for run in (lambda: pack_dataset(data, tmp_path / "p1"), lambda: FaceParsingDataset(data, "train")):
        with pytest.raises(DataError, match=r"label/s001\.png: no label file for sample 's001'.*1 of 4"):
            run()
    data = disc_dataset(tmp_path / "png2", n=6)
    write_depth(data / "depth" / "s002.png", np.zeros((20, 32), np.float32))
    mis_sized = r"depth/s002\.png: depth size \(32, 20\) differs from rgb \(32, 32\)"
    with pytest.raises(DataError, match=mis_sized):
        pack_dataset(data, tmp_path / "p2")
    with pytest.raises(DataError, match=mis_sized):
        FaceParsingDataset(data, "train").load(2)


def test_check_data_on_a_pack(folder, packed, tmp_path):
    result = runner.invoke(app, ["pack", str(folder), "--out", str(tmp_path / "p"), "--chunk-size", "4"])
    assert result.exit_code == 0, result.output
    assert "packed" in result.output and "train 8" in result.output
    result = runner.invoke(app, ["check-data", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "OK: 10 samples" in result.output and "packed layout" in result.output.replace("\n", " ")
    report = check_dataset(packed)
    assert report.ok and report.checked == 10 and report.depth_counts == {"train": 7, "val": 2}
    assert report.pixel_counts["train"][255] == 8 * 2  # the ignored pixels of 8 labels
    assert report.table1_row() == check_dataset(folder).table1_row()

    truncated = chunk_path(tmp_path / "p", "train", "rgb", 1)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    chunk_path(tmp_path / "p", "val", "label", 0).unlink()
    result = runner.invoke(app, ["check-data", str(tmp_path / "p")])
    flat = result.output.replace("\n", "")
    assert result.exit_code == 1
    assert "rgb-00001.npy: unreadable or truncated chunk file" in flat
    assert "label-00000.npy: chunk file not found" in flat and "faceparse pack" in flat


def test_label_ids_out_of_range_are_named(folder, tmp_path):
    out = tmp_path / "p"
    pack_dataset(folder, out, chunk_size=4)
    labels = np.load(chunk_path(out, "train", "label", 1))
    labels[2, 5, 5] = 20  # sample 6 of train
    np.save(chunk_path(out, "train", "label", 1), labels)
    report = check_dataset(out)
    assert [str(p) for p in report.errors] == [
        f"{chunk_path(out, 'train', 'label', 1)}: sample 's006': label ids out of range for scheme "
        "'celebamask13' (ids 0..12 and 255): 20 (1 px)"
    ]
    with pytest.raises(DataError, match=r"label-00001\.npy: sample 's006': label ids out of range"):
        FaceParsingDataset(out, "train").load(6)


def test_a_pack_refuses_a_folder_that_is_not_one(folder, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty and not a packed dataset"):
        pack_dataset(folder, tmp_path / "busy")


def test_training_and_evaluation_on_a_packed_root(packed, tmp_path):
    from faceparse.engine import train
    from faceparse.eval.run import evaluate_checkpoint

    run = tmp_path / "run"
    train(None, "pretrain-rgb", overrides=[*tiny_overrides(packed, run, iterations=2), "data.workers=2"])
    assert (run / "pretrain-rgb" / "config.yaml").is_file()
    result = evaluate_checkpoint(run / "pretrain-rgb", packed, "val", batch_size=2)
    assert result.images == 2 and result.rgb is not None
