"""Checkpoints: one folder per save, written whole or not at all.

A checkpoint folder ``<stage dir>/checkpoints/iter-0001000/`` holds

* ``<network>.safetensors``: the weights of each network (``parser_rgb``, ``parser_depth``, ``generator``,
  ``discriminator``), one file per network;
* ``state.pt``: optimiser and scheduler states, the iteration, and the RNG states (python, numpy, torch,
  the data sampler's), loadable with ``torch.load(..., weights_only=True)``;
* ``meta.json``: the resolved config, the label scheme, and for each network the builder name, its
  arguments and its input normalisation, so ``load_checkpoint`` rebuilds the networks with nothing else.

The folder is assembled under a temporary name and renamed into place, so a crash mid-save leaves the
previous checkpoints untouched and never a half-written one; :func:`clean_interrupted_saves` removes
what it did leave, when training starts again. Folders and files get the permissions of the umask.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from faceparse.utils.io import DataError, atomic_write_json, follow_umask, read_json, remove_temporaries

CHECKPOINT_DIR = "checkpoints"
PREFIX = "iter-"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
FORMAT_VERSION = 1


# --- RNG states -----------------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Python, numpy and torch RNG states as plain containers and tensors (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - saving the legacy global state is the point
    py_version, py_state, py_gauss = random.getstate()
    return {
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }


def restore_rng(rng: dict[str, Any]) -> None:
    py = rng["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = rng["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))  # noqa: NPY002
    torch.set_rng_state(rng["torch"])


# --- writing --------------------------------------------------------------------------------------------


def checkpoint_name(iteration: int) -> str:
    return f"{PREFIX}{iteration:07d}"


def _state_dict_for_safetensors(module: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; a plain copy of each tensor is always accepted
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(
    checkpoints: str | os.PathLike,
    iteration: int,
    networks: dict[str, nn.Module],
    state: dict[str, Any],
    meta: dict[str, Any],
    *,
    keep: int = 2,
) -> Path:
    """Write ``checkpoints/iter-<iteration>/`` atomically and prune all but the newest ``keep``."""
    checkpoints = Path(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    final = checkpoints / checkpoint_name(iteration)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=checkpoints))
    try:
        for name, module in networks.items():
            save_file(_state_dict_for_safetensors(module), str(tmp / f"{name}.safetensors"))
        torch.save({**state, "iteration": iteration}, tmp / STATE_FILE)
        meta = {**meta, "format_version": FORMAT_VERSION, "iteration": iteration}
        atomic_write_json(tmp / META_FILE, meta)
        # mkdtemp makes the folder owner-only, safetensors the weight files: give the umask's permissions
        for path in (*tmp.iterdir(), tmp):
            follow_umask(path)
        _fsync_dir(tmp)
        _move_into_place(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(checkpoints, keep)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` onto ``final``; an existing ``final`` (same iteration saved twice) is swapped out."""
    if not final.exists():
        os.rename(tmp, final)
        return
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def clean_interrupted_saves(checkpoints: str | os.PathLike) -> None:
    """Undo what saves killed midway left in ``checkpoints``: their temporary folders are removed, and a
    swap cut between its two renames (:func:`_move_into_place`) is completed backwards: ``.iter-N.old``
    becomes ``iter-N`` again when that is missing, and is removed otherwise.

    Only while no other process saves there (the stage folder's lock, which training holds).
    """
    checkpoints = Path(checkpoints)
    if not checkpoints.is_dir():
        return
    remove_temporaries(checkpoints)
    for old in checkpoints.glob(f".{PREFIX}*.old"):
        final = old.with_name(old.name[1 : -len(".old")])
        if not final.exists() and (old / META_FILE).is_file():
            os.rename(old, final)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _prune(checkpoints: Path, keep: int) -> None:
    for path in list_checkpoints(checkpoints)[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


# --- finding and reading --------------------------------------------------------------------------------


def list_checkpoints(checkpoints: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in ``checkpoints``, oldest first."""
    checkpoints = Path(checkpoints)
    if not checkpoints.is_dir():
        return []
    found = [
        p
        for p in checkpoints.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and (p / META_FILE).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(stage_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(Path(stage_dir) / CHECKPOINT_DIR)
    return found[-1] if found else None


def find_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a checkpoint folder, a stage folder (its newest checkpoint) or a run folder (its last stage)."""
    from faceparse.runs.stages import STAGES

    path = Path(path)
    if (path / META_FILE).is_file():
        return path
    if not path.is_dir():
        raise DataError(path, "checkpoint not found")
    if (latest := latest_checkpoint(path)) is not None:
        return latest
    for stage in reversed(STAGES):
        if (latest := latest_checkpoint(path / stage.name)) is not None:
            return latest
    raise DataError(
        path, f"no checkpoint here (expected {META_FILE}, {CHECKPOINT_DIR}/{PREFIX}*/ or stage folders)"
    )


def read_meta(checkpoint: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(checkpoint) / META_FILE)


def read_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    path = Path(checkpoint) / STATE_FILE
    if not path.is_file():
        raise DataError(path, "checkpoint state file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated zip
        raise DataError(path, f"unreadable checkpoint state ({e})") from None


def load_weights(module: nn.Module, checkpoint: str | os.PathLike, name: str) -> None:
    """Load ``<name>.safetensors`` from ``checkpoint`` into ``module`` (strict: every key must match)."""
    path = Path(checkpoint) / f"{name}.safetensors"
    if not path.is_file():
        raise DataError(path, f"weights of {name!r} not found in this checkpoint")
    try:
        weights = load_file(str(path))
    except Exception as e:
        raise DataError(path, f"unreadable safetensors file ({e})") from None
    expected = module.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    resized = [k for k in expected if k in weights and weights[k].shape != expected[k].shape]
    if missing or unexpected or resized:
        raise DataError(
            path,
            f"weights do not fit the {name} network: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape mismatch {resized[:3]}",
        )
    module.load_state_dict(weights)


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[dict[str, nn.Module], dict]:
    """Rebuild every network stored in a checkpoint, in eval mode, with its metadata.

    ``path`` is a checkpoint folder, a stage folder or a run folder (see :func:`find_checkpoint`). The
    metadata holds ``config`` (resolved), ``scheme`` (label scheme dict), ``stage``, ``iteration`` and
    ``networks``: for each network its builder, arguments, input and normalisation
    (``faceparse.data.normalize.NORMALIZATIONS`` keys).
    """
    from faceparse.models import build_model

    checkpoint = find_checkpoint(path)
    meta = read_meta(checkpoint)
    networks: dict[str, nn.Module] = {}
    for name, spec in meta["networks"].items():
        module = build_model(spec["builder"], **spec["kwargs"])
        load_weights(module, checkpoint, name)
        networks[name] = module.to(device).eval()
    meta["path"] = str(checkpoint)
    return networks, meta
