"""Checkpoints: weights/optimiser/RNG round trip, atomic writes, pruning, rebuild from metadata, errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from faceparse.engine.schedule import make_poly_scheduler
from faceparse.models import build_model
from faceparse.runs import checkpoint as ckpt
from faceparse.utils.io import DataError

SPECS = {
    "generator": {"builder": "unet_generator", "kwargs": {"num_downs": 5, "ngf": 4}},
    "discriminator": {"builder": "pixel_discriminator", "kwargs": {"in_channels": 4, "ndf": 4}},
}


def _networks(seed: int = 0) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    return {name: build_model(spec["builder"], **spec["kwargs"]) for name, spec in SPECS.items()}


def _trained_state(networks):
    """An optimiser with real state (Adam moments) and a stepped scheduler."""
    params = [p for m in networks.values() for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999))
    scheduler = make_poly_scheduler(optimizer, total=10, power=0.9)
    x = torch.rand(2, 3, 32, 32)
    for _ in range(2):
        optimizer.zero_grad()
        networks["generator"](x).mean().backward()
        optimizer.step()
        scheduler.step()
    return optimizer, scheduler


def _save(directory: Path, iteration: int, networks, optimizer, scheduler, keep: int = 2) -> Path:
    state = {"optimizers": {"all": optimizer.state_dict()}, "schedulers": {"all": scheduler.state_dict()}}
    state["rng"] = ckpt.capture_rng()
    meta = {"stage": "pretrain-translator", "networks": SPECS, "scheme": {"name": "celebamask13"}}
    return ckpt.save_checkpoint(directory, iteration, networks, state, meta, keep=keep)


def test_rng_states_round_trip():
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002 - the legacy global state is what checkpoints restore
    torch.manual_seed(3)
    saved = ckpt.capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    ckpt.restore_rng(saved)
    second = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


def test_weights_optimiser_scheduler_rng_round_trip(tmp_path: Path):
    networks = _networks()
    optimizer, scheduler = _trained_state(networks)
    path = _save(tmp_path / "checkpoints", 7, networks, optimizer, scheduler)
    assert path.name == "iter-0000007"
    assert sorted(p.name for p in path.iterdir()) == [
        "discriminator.safetensors",
        "generator.safetensors",
        "meta.json",
        "state.pt",
    ]

    fresh = _networks(seed=99)
    for name, module in fresh.items():
        ckpt.load_weights(module, path, name)
        for (key, a), b in zip(
            module.state_dict().items(), networks[name].state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), key
    state = ckpt.read_state(path)  # torch.load(..., weights_only=True) inside
    assert state["iteration"] == 7
    fresh_optimizer, fresh_scheduler = _trained_state(_networks(seed=5))
    fresh_optimizer.load_state_dict(state["optimizers"]["all"])
    fresh_scheduler.load_state_dict(state["schedulers"]["all"])
    assert fresh_scheduler.last_epoch == scheduler.last_epoch == 2
    original = optimizer.state_dict()["state"]
    restored = fresh_optimizer.state_dict()["state"]
    assert original.keys() == restored.keys()
    for k in original:
        assert torch.equal(original[k]["exp_avg"], restored[k]["exp_avg"])
    ckpt.restore_rng(state["rng"])  # the stored RNG state is loadable as-is
    meta = ckpt.read_meta(path)
    assert meta["iteration"] == 7 and meta["format_version"] == ckpt.FORMAT_VERSION


def test_load_checkpoint_rebuilds_networks_from_metadata(tmp_path: Path):
    networks = _networks()
    optimizer, scheduler = _trained_state(networks)
    _save(tmp_path / "run" / "pretrain-translator" / "checkpoints", 3, networks, optimizer, scheduler)
    for where in (tmp_path / "run", tmp_path / "run" / "pretrain-translator"):
        loaded, meta = ckpt.load_checkpoint(where)
        assert set(loaded) == {"generator", "discriminator"} and meta["iteration"] == 3
        assert not loaded["generator"].training  # eval mode, ready for inference
        x = torch.rand(1, 3, 32, 32)
        networks["generator"].eval()
        assert torch.equal(loaded["generator"](x), networks["generator"](x))


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch):
    directory = tmp_path / "checkpoints"
    networks = _networks()
    optimizer, scheduler = _trained_state(networks)
    good = _save(directory, 10, networks, optimizer, scheduler)
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        _save(directory, 20, networks, optimizer, scheduler)
    monkeypatch.undo()
    assert [p.name for p in directory.iterdir()] == ["iter-0000010"]  # no partial iter-20, no temp folder
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert ckpt.latest_checkpoint(tmp_path) == good


def test_saving_the_same_iteration_twice_replaces_it(tmp_path: Path):
    networks = _networks()
    optimizer, scheduler = _trained_state(networks)
    _save(tmp_path / "checkpoints", 4, networks, optimizer, scheduler)
    with torch.no_grad():
        next(networks["generator"].parameters()).add_(1.0)
    path = _save(tmp_path / "checkpoints", 4, networks, optimizer, scheduler)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["iter-0000004"]
    fresh = _networks(seed=3)["generator"]
    ckpt.load_weights(fresh, path, "generator")
    assert torch.equal(next(fresh.parameters()), next(networks["generator"].parameters()))


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path):
    networks = _networks()
    optimizer, scheduler = _trained_state(networks)
    for iteration in (1, 2, 10, 3):
        _save(tmp_path / "checkpoints", iteration, networks, optimizer, scheduler, keep=2)
    names = [p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints")]
    assert names == ["iter-0000003", "iter-0000010"]  # ordered by iteration, not by name or time


def test_errors_name_the_bad_file(tmp_path: Path):
    with pytest.raises(DataError, match="no checkpoint here"):
        ckpt.find_checkpoint(tmp_path)
    with pytest.raises(DataError, match="checkpoint not found"):
        ckpt.find_checkpoint(tmp_path / "missing")
    networks = _networks()
    optimizer, scheduler = _trained_state(networks)
    path = _save(tmp_path / "checkpoints", 1, networks, optimizer, scheduler)

    (path / "generator.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DataError, match="generator.safetensors"):
        ckpt.load_weights(_networks()["generator"], path, "generator")
    with pytest.raises(DataError, match="do not fit"):
        ckpt.load_weights(build_model("pixel_discriminator", in_channels=4, ndf=8), path, "discriminator")
    (path / "state.pt").write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match="state.pt"):
        ckpt.read_state(path)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["networks"] == SPECS


def test_checkpoint_folders_and_files_follow_the_umask(tmp_path: Path):
    networks = _networks()
    path = _save(tmp_path / "ckpt", 5, networks, *_trained_state(networks))
    (tmp_path / "plain-dir").mkdir()  # what the umask gives a folder and a file made the ordinary way
    (tmp_path / "plain-file").write_text("")
    folder_mode = (tmp_path / "plain-dir").stat().st_mode & 0o777
    file_mode = (tmp_path / "plain-file").stat().st_mode & 0o777
    assert path.stat().st_mode & 0o777 == folder_mode
    for file in path.iterdir():  # weights (safetensors writes 0600), state, meta
        assert file.stat().st_mode & 0o777 == file_mode, file.name


def test_what_a_killed_save_left_is_cleaned_up(tmp_path: Path):
    networks = _networks()
    optimizer, scheduler = _trained_state(networks)
    directory = tmp_path / "ckpt"
    two = _save(directory, 2, networks, optimizer, scheduler)
    # killed while writing iteration 4: its temporary folder stays behind
    partial = directory / ".iter-0000004.k2j3h4m5.tmp"
    partial.mkdir()
    (partial / "generator.safetensors").write_bytes(b"\0" * 10)
    # killed while replacing iteration 2 by a new save of it, between the swap's two renames
    two.rename(directory / ".iter-0000002.old")
    assert ckpt.list_checkpoints(directory) == []

    ckpt.clean_interrupted_saves(directory)

    assert sorted(p.name for p in directory.iterdir()) == ["iter-0000002"]
    ckpt.load_checkpoint(two)  # whole again
