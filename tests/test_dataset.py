"""FaceParsingDataset and the depth-annotated subset (paper §4.1: 10%; Figure 7: 1%, 10%, 100%)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from faceparse.data.dataset import FaceParsingDataset, depth_subset, depth_subset_size
from faceparse.data.format import DatasetInfo, DepthInfo, read_depth, write_info, write_sample, write_split
from faceparse.data.transforms import build_transform
from faceparse.utils.io import DataError
from tiny import noise_dataset, noise_sample

H, W = 20, 24


def make_dataset(root: Path, n: int = 10, splits: dict[str, slice] | None = None) -> list[str]:
    return noise_dataset(root, n, (H, W), splits)


def _sample(i: int) -> dict:
    return noise_sample(i, (H, W))


# --- the depth subset -----------------------------------------------------------------------------


def test_depth_subset_sizes() -> None:
    ids = [f"img{i}" for i in range(1000)]
    assert [len(depth_subset(ids, f, seed=0)) for f in (0.01, 0.1, 1.0)] == [10, 100, 1000]
    assert len(depth_subset([str(i) for i in range(7)], 0.01, seed=0)) == 1  # max(1, round(0.07))
    assert depth_subset(ids, 0.0, seed=0) == set()
    assert depth_subset_size(25, 0.1) == 2  # round(2.5) = 2: Python rounds halves to even
    assert depth_subset_size(35, 0.1) == 4  # round(3.5) = 4
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        depth_subset(ids, 1.5, seed=0)


def test_depth_subset_is_deterministic_nested_and_seeded() -> None:
    ids = [f"img{i}" for i in range(1000)]
    one, ten, full = (depth_subset(ids, f, seed=3) for f in (0.01, 0.1, 1.0))
    assert one < ten < full == set(ids)
    assert depth_subset(ids, 0.1, seed=3) == ten
    assert depth_subset(list(reversed(ids)), 0.1, seed=3) == ten  # the split file's order does not matter
    other = depth_subset(ids, 0.1, seed=4)
    assert other != ten and len(other) == 100


# --- the Dataset ----------------------------------------------------------------------------------


def test_items_have_the_documented_types(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=4)
    ds = FaceParsingDataset(tmp_path, "train")
    item = ds[1]
    assert item["rgb"].shape == (3, H, W) and item["rgb"].dtype == torch.float32
    assert 0.0 <= item["rgb"].min() and item["rgb"].max() <= 1.0
    assert item["depth"].shape == (1, H, W) and item["depth"].dtype == torch.float32
    assert item["label"].shape == (H, W) and item["label"].dtype == torch.int64 and item["label"][0, 0] == 255
    assert item["has_depth"].dtype == torch.bool and bool(item["has_depth"])
    assert item["id"] == "0001"
    expected = _sample(1)
    np.testing.assert_array_equal(
        item["rgb"].permute(1, 2, 0).mul(255).round().byte().numpy(), expected["rgb"]
    )
    np.testing.assert_array_equal(item["depth"][0].numpy(), read_depth(tmp_path / "depth" / "0001.png"))
    assert ds.scheme.name == "celebamask13"


def test_depth_is_hidden_outside_the_subset(tmp_path: Path) -> None:
    ids = make_dataset(tmp_path, n=20)
    ds = FaceParsingDataset(tmp_path, "train", depth_fraction=0.1, seed=5)
    chosen = depth_subset(ids, 0.1, seed=5)
    assert ds.depth_ids == chosen and len(chosen) == 2
    assert sorted(ds.depth_indices()) == sorted(ids.index(i) for i in chosen)
    for i in range(len(ds)):
        item = ds[i]
        if item["id"] in chosen:
            assert item["has_depth"] and item["depth"].max() > 0
        else:
            assert not item["has_depth"] and not item["depth"].any()


def test_default_collate_and_workers_are_deterministic(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=6)
    ds = FaceParsingDataset(
        tmp_path, "train", depth_fraction=0.5, transform=build_transform("eagrnet", 16, "celebamask13")
    )
    batches = [next(iter(DataLoader(ds, batch_size=6, num_workers=w))) for w in (0, 2)]
    assert batches[0]["id"] == [f"{i:04d}" for i in range(6)]
    assert batches[0]["rgb"].shape == (6, 3, 16, 16) and batches[0]["has_depth"].shape == (6,)
    for key in ("rgb", "depth", "label", "has_depth"):
        torch.testing.assert_close(batches[0][key], batches[1][key], rtol=0, atol=0)
    ds.set_epoch(1)  # a new epoch draws new augmentations ...
    assert any(not torch.equal(ds[i]["label"], batches[0]["label"][i]) for i in range(6))
    ds.set_epoch(0)  # ... and an old one replays them
    assert all(torch.equal(ds[i]["label"], batches[0]["label"][i]) for i in range(6))


def test_missing_split_and_empty_split(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=2)
    with pytest.raises(DataError, match="split 'val' missing; available: train") as err:
        FaceParsingDataset(tmp_path, "val")
    assert err.value.path == tmp_path / "splits" / "val.txt"
    write_split(tmp_path, "test", [])
    with pytest.raises(DataError, match="lists no samples") as err:
        FaceParsingDataset(tmp_path, "test")
    assert err.value.path == tmp_path / "splits" / "test.txt"


def test_missing_files_are_named(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=3)
    (tmp_path / "label" / "0002.png").unlink()
    with pytest.raises(DataError, match=r"no label file for sample '0002'.*1 of 3") as err:
        FaceParsingDataset(tmp_path, "train")
    assert err.value.path == tmp_path / "label" / "0002.png"


def test_missing_depth_is_has_depth_false_unless_required(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=3)
    (tmp_path / "depth" / "0001.png").unlink()
    ds = FaceParsingDataset(tmp_path, "train")
    assert not ds[1]["has_depth"] and ds[0]["has_depth"] and 1 not in ds.depth_indices()
    with pytest.raises(DataError, match="no depth file for sample '0001'") as err:
        FaceParsingDataset(tmp_path, "train", require_depth=True)
    assert err.value.path == tmp_path / "depth" / "0001.png"


def test_corrupt_file_and_size_mismatch_raise_naming_the_file(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=2)
    rgb_path = tmp_path / "rgb" / "0000.png"
    rgb_path.write_bytes(rgb_path.read_bytes()[:60])
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(tmp_path / "label" / "0001.png")
    ds = FaceParsingDataset(tmp_path, "train")
    with pytest.raises(DataError) as err:
        ds[0]
    assert err.value.path == rgb_path
    with pytest.raises(DataError, match="differs from rgb") as err:
        ds[1]
    assert err.value.path == tmp_path / "label" / "0001.png"


def test_released_layout(tmp_path: Path) -> None:
    root = tmp_path / "CelebAMask-HQ-D"
    (root / "depth").mkdir(parents=True)
    Image.fromarray(np.full((H, W), 128, np.uint8)).save(root / "depth" / "a.png")
    (root / "test_list.txt").write_text("depth/a.png\n")
    with pytest.raises(DataError, match="released depth folders hold depth only"):
        FaceParsingDataset(root, "test")
    s = _sample(0)
    write_sample(root, "a", rgb=s["rgb"], label=s["label"])
    item = FaceParsingDataset(root, "test")[0]
    assert item["id"] == "a" and bool(item["has_depth"])
    torch.testing.assert_close(item["depth"], torch.full((1, H, W), 128 / 255))


def test_rgb_only_dataset(tmp_path: Path) -> None:
    s = _sample(0)
    write_sample(tmp_path, "a", rgb=s["rgb"], label=s["label"])
    write_split(tmp_path, "train", ["a"])
    write_info(tmp_path, DatasetInfo(name="x", scheme="celebamask13", depth=DepthInfo(coverage="none")))
    item = FaceParsingDataset(tmp_path, "train")[0]
    assert not item["has_depth"] and item["depth"].shape == (1, H, W)


# --- bad input named by file (issue 11) -----------------------------------------------------------


def test_out_of_range_label_id_names_the_file(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=2)  # celebamask13: ids 0..12, and 255 (ignore) at pixel (0, 0)
    s = _sample(1)
    s["label"][3, 4:6] = 20
    write_sample(tmp_path, "0001", label=s["label"])
    ds = FaceParsingDataset(tmp_path, "train")
    assert int(ds[0]["label"].max()) == 255  # ignore stays allowed
    with pytest.raises(DataError, match=r"label ids out of range.*ids 0\.\.12 and 255\): 20 \(2 px\)") as err:
        ds[1]
    assert err.value.path == tmp_path / "label" / "0001.png"


def test_data_error_in_a_loader_worker_stays_a_data_error(tmp_path: Path) -> None:
    """Training loads in worker processes; the CLI turns only a DataError into a clean exit."""
    make_dataset(tmp_path, n=2)
    s = _sample(0)
    s["label"][0, 1] = 40
    write_sample(tmp_path, "0000", label=s["label"])
    loader = DataLoader(FaceParsingDataset(tmp_path, "train"), batch_size=2, num_workers=1)
    with pytest.raises(DataError, match="out of range") as err:
        next(iter(loader))
    assert str(tmp_path / "label" / "0000.png") in str(err.value)
    assert "Traceback" not in str(err.value)


def test_ids_outside_the_dataset_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_dataset(root, n=2)
    write_sample(tmp_path / "outside", "x", **_sample(0))
    for bad in ("../outside/x", str(tmp_path / "outside" / "x")):
        (root / "splits" / "train.txt").write_text(f"0000\n{bad}\n")
        with pytest.raises(DataError, match=f"line 2: id '{re.escape(bad)}'") as err:
            FaceParsingDataset(root, "train")
        assert err.value.path == root / "splits" / "train.txt"
