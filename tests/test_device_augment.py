"""data.augment_on=device: the batched torch augmentation implements the worker path's transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faceparse.data.dataset import FaceParsingDataset, to_tensors
from faceparse.data.device_augment import DeviceAugment, collate_planned, planned_tensors
from faceparse.data.transforms import (
    BISENET_SCALES,
    PairedTransform,
    RandomHFlip,
    RandomScaleCrop,
    build_transform,
)
from faceparse.labels import IGNORE_INDEX, get_scheme

SCHEME = get_scheme("celebamask19")


def _head(size: int = 64, seed: int = 0) -> dict:
    """A textured head: skin disc, eyes left and right, hair on top, dome depth on a 0 background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cx, cy, r = size * rng.uniform(0.4, 0.6), size * rng.uniform(0.4, 0.6), size * 0.3
    d = np.hypot(xx - cx, yy - cy)
    label = np.zeros((size, size), np.uint8)
    label[d < r] = SCHEME.index("skin")
    label[(np.hypot(xx - cx + 0.4 * r, yy - cy + 0.2 * r)) < 0.15 * r] = SCHEME.index("l_eye")
    label[(np.hypot(xx - cx - 0.4 * r, yy - cy + 0.2 * r)) < 0.15 * r] = SCHEME.index("r_eye")
    label[(d < r) & (yy < cy - 0.6 * r)] = SCHEME.index("hair")
    label[:2, :3] = IGNORE_INDEX
    rgb = rng.uniform(0, 60, (size, size, 3)) + label[..., None].astype(np.float32) * [9, 6, 3]
    rgb += 40 * np.sin(xx / 3.0)[..., None]
    depth = np.where(d < r, 0.4 + 0.6 * np.sqrt(np.clip(1 - (d / r) ** 2, 0, 1)), 0).astype(np.float32)
    return {
        "rgb": rgb.clip(0, 255).astype(np.uint8),
        "depth": depth,
        "label": label,
        "has_depth": True,
        "id": f"h{seed}",
    }


def _both_paths(transform: PairedTransform, samples: list[dict], seeds: list[int], out: int):
    """(worker batch, device batch) for the same per-sample generators."""
    worker = [to_tensors(transform(s, np.random.default_rng(k))) for s, k in zip(samples, seeds, strict=True)]
    planned = [
        planned_tensors(s, transform.plan(s["label"].shape, np.random.default_rng(k)))
        for s, k in zip(samples, seeds, strict=True)
    ]
    device = DeviceAugment(SCHEME, (out, out))(collate_planned(planned))
    stacked = {key: torch.stack([w[key] for w in worker]) for key in ("rgb", "depth", "label")}
    return stacked, device


@pytest.mark.parametrize("preset", ["bisenet", "eagrnet"])
@pytest.mark.parametrize("swap", [True, False])
def test_a_plan_holds_exactly_what_the_worker_path_draws(preset, swap):
    transform = build_transform(preset, 48, SCHEME, train=True, flip_swap=swap)
    for seed in range(12):
        sample = _head(seed=seed)
        worker = transform(sample, np.random.default_rng(seed))
        plan = transform.plan(sample["label"].shape, np.random.default_rng(seed))
        replayed = plan.apply(sample, SCHEME)
        for key in ("rgb", "depth", "label"):
            np.testing.assert_array_equal(replayed[key], worker[key], err_msg=f"{preset} seed {seed} {key}")


@pytest.mark.parametrize("preset", ["bisenet", "eagrnet"])
def test_device_path_agrees_with_the_worker_path(preset):
    samples, seeds = [_head(seed=k) for k in range(8)], list(range(8))
    worker, device = _both_paths(build_transform(preset, 48, SCHEME, train=True), samples, seeds, 48)
    assert device["rgb"].shape == worker["rgb"].shape == (8, 3, 48, 48)
    assert device["label"].dtype == torch.int64 and device["depth"].shape == (8, 1, 48, 48)
    rgb_diff = (device["rgb"] - worker["rgb"]).abs() * 255
    # OpenCV rounds bilinear RGB to uint8 and quantises coordinates to 1/32 px; torch does neither
    assert rgb_diff.mean() < 0.5 and torch.quantile(rgb_diff.flatten(), 0.99) <= 2.0
    assert (device["label"] == worker["label"]).float().mean() > 0.99
    surface = (device["depth"] > 0) == (worker["depth"] > 0)
    assert surface.float().mean() > 0.99
    both = (device["depth"] > 0) & (worker["depth"] > 0)
    assert (device["depth"] - worker["depth"]).abs()[both].mean() < 2e-3


def test_device_labels_hold_only_ids_of_the_input():
    samples = [_head(seed=k) for k in range(6)]
    _, device = _both_paths(build_transform("eagrnet", 40, SCHEME, train=True), samples, list(range(6)), 40)
    present = set().union(*(np.unique(s["label"]).tolist() for s in samples))
    flipped = {int(SCHEME.flip_permutation()[i]) for i in present if i < SCHEME.num_classes}
    assert set(device["label"].unique().tolist()) <= present | flipped | {IGNORE_INDEX}


@pytest.mark.parametrize("swap", [True, False])
def test_the_flip_swaps_left_and_right_classes_unless_told_not_to(swap):
    label = np.full((16, 16), SCHEME.index("l_eye"), np.uint8)
    label[:, 8:] = SCHEME.index("r_eye")
    sample = {"rgb": np.zeros((16, 16, 3), np.uint8), "depth": np.zeros((16, 16), np.float32)}
    sample |= {"label": label, "has_depth": False, "id": "x"}
    # a flip that always happens, then an identity crop
    transform = PairedTransform([RandomHFlip(SCHEME, p=1.0, swap=swap), RandomScaleCrop((16, 16), (1.0,))])
    worker, device = _both_paths(transform, [sample], [0], 16)
    expected = label if swap else label[:, ::-1]  # mirrored and swapped: the same picture again
    np.testing.assert_array_equal(device["label"][0].numpy(), expected)
    np.testing.assert_array_equal(worker["label"][0].numpy(), expected)


def test_depth_is_never_smeared_into_the_background():
    size = 48
    yy, xx = np.mgrid[:size, :size]
    plateau = np.where(np.hypot(xx - 24, yy - 24) < 14, 0.8, 0.0).astype(np.float32)
    samples = []
    for k in range(8):
        s = _head(size, seed=k)
        samples.append(s | {"depth": plateau})
    _, device = _both_paths(build_transform("eagrnet", 40, SCHEME, train=True), samples, list(range(8)), 40)
    values = device["depth"][device["depth"] > 0]
    assert values.numel() > 0
    torch.testing.assert_close(values, torch.full_like(values, 0.8))  # no ramp from 0.8 down to 0


def test_both_paths_draw_the_same_distribution_of_scales_flips_and_angles():
    bisenet = build_transform("bisenet", 48, SCHEME, train=True)
    plans = [bisenet.plan((64, 64), np.random.default_rng(k)) for k in range(1200)]
    scales = np.array([p.geometry[0, 0] for p in plans])
    assert set(np.round(scales, 6)) == set(BISENET_SCALES)
    counts = np.array([(np.isclose(scales, s)).sum() for s in BISENET_SCALES])
    assert counts.min() > 140 and counts.max() < 260  # 200 each expected
    assert 0.44 < np.mean([p.flip for p in plans]) < 0.56
    eagrnet = build_transform("eagrnet", 48, SCHEME, train=True)
    plans = [eagrnet.plan((48, 48), np.random.default_rng(k)) for k in range(1200)]
    angles = np.degrees([math.atan2(-p.geometry[1, 0], p.geometry[0, 0]) for p in plans])
    zooms = np.array([math.hypot(p.geometry[0, 0], p.geometry[1, 0]) for p in plans])
    assert np.abs(angles).max() <= 30.0 + 1e-9
    assert 0.55 < np.mean(np.abs(angles) > 1e-9) < 0.65  # rotated with probability 0.6
    assert zooms.min() >= 1 / 1.25 - 1e-9 and zooms.max() <= 1 / 0.75 + 1e-9


def test_device_augmentation_is_bit_identical_across_runs_on_cpu():
    transform = build_transform("bisenet", 48, SCHEME, train=True)
    samples = [_head(seed=k) for k in range(4)]
    first = _both_paths(transform, samples, [5, 6, 7, 8], 48)[1]
    second = _both_paths(transform, samples, [5, 6, 7, 8], 48)[1]
    for key in ("rgb", "depth", "label"):
        assert torch.equal(first[key], second[key]), key


def test_a_batch_of_mixed_sizes_is_padded_without_changing_any_sample():
    transform = build_transform("eagrnet", 40, SCHEME, train=True)
    samples = [_head(64, seed=1), _head(48, seed=2) | {"has_depth": False}]
    plans = [
        planned_tensors(s, transform.plan(s["label"].shape, np.random.default_rng(k)))
        for k, s in enumerate(samples)
    ]
    augment = DeviceAugment(SCHEME, (40, 40))
    together = augment(collate_planned(plans))
    for k, item in enumerate(plans):
        alone = augment(collate_planned([item]))
        for key in ("rgb", "depth", "label"):
            torch.testing.assert_close(together[key][k], alone[key][0], msg=key)
    assert not together["depth"][1].any()  # hidden depth stays hidden


def test_training_with_device_augmentation_runs_and_is_recorded(tiny_data, tmp_path):
    from faceparse.engine.loop import train
    from faceparse.runs.config import load_config
    from tiny import tiny_overrides

    out = tmp_path / "run"
    last = train(
        None,
        "pretrain-rgb",
        overrides=[*tiny_overrides(tiny_data, out, iterations=2), "data.augment_on=device"],
    )
    assert last.name.endswith("2")
    saved = load_config(out / "pretrain-rgb" / "config.yaml")
    assert saved.data.augment_on == "device"
    rows = (out / "pretrain-rgb" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "nan" not in rows[-1]


def test_auto_resolves_to_the_worker_path_on_a_cpu(tiny_data):
    from faceparse.runs.config import load_config, resolve

    cfg = resolve(load_config(None, [f"data.root={tiny_data}", "run.accelerator=cpu"]), 13)
    assert cfg.data.augment_on == "worker"


def test_the_dataset_hands_planned_items_to_the_loader(tiny_data):
    from faceparse.engine.sampling import SeededItems

    dataset = FaceParsingDataset(tiny_data, "train", transform=build_transform("bisenet", 24, "celebamask13"))
    item = SeededItems(dataset, planned=True)[(0, 123)]
    assert item["rgb"].dtype == torch.uint8 and item["aug_matrix"].shape == (2, 3)
    batch = DeviceAugment("celebamask13", (24, 24))(collate_planned([item]))
    direct = SeededItems(dataset)[(0, 123)]
    assert (batch["label"][0] == direct["label"]).float().mean() > 0.97
