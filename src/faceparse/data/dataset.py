"""The torch Dataset over a faceparse (or released-layout) RGB-D folder, and the depth-annotated subset.

Paper §4.1: only 10% of the depth + label pairs are used for training (the ablation, Figure 7, uses
1%, 10% and 100%), while the RGB labels are used in full. :func:`depth_subset` picks that subset;
:class:`FaceParsingDataset` hides the depth of every other sample (``has_depth`` False, depth zeros).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from faceparse.data.format import (
    Layout,
    SamplePaths,
    check_label_ids,
    open_layout,
    read_depth,
    read_sample_files,
    require_files,
)
from faceparse.data.packed import PackedSplit, is_packed
from faceparse.labels import LabelScheme
from faceparse.utils.io import DataError

Transform = Callable[[dict[str, Any], np.random.Generator], dict[str, Any]]


def depth_subset_size(num_ids: int, fraction: float) -> int:
    """``max(1, round(fraction * num_ids))`` for ``fraction > 0`` (Python's ``round``: halves go to even),
    0 for ``fraction == 0``; never more than ``num_ids``. 1000 ids → 10 / 100 / 1000 at 1% / 10% / 100%;
    7 ids at 1% → 1 (a requested fraction always keeps at least one depth map).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"depth fraction must lie in [0, 1], got {fraction}")
    if fraction == 0.0 or num_ids == 0:
        return 0
    return min(num_ids, max(1, round(fraction * num_ids)))


def _rank_key(seed: int, sid: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{sid}".encode(), digest_size=16).digest()


def depth_ranking(ids: Sequence[str], seed: int) -> list[str]:
    """A seeded permutation of ``ids``: sorted by a keyed hash of (seed, id).

    It depends only on the SET of ids and the seed (not on the order of the split file, nor on the
    numpy version), and each id keeps its rank key when other ids are added or removed.
    """
    return sorted(set(ids), key=lambda sid: (_rank_key(seed, sid), sid))


def depth_subset(ids: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The ids whose depth is used for training: a prefix of :func:`depth_ranking`.

    Its size is :func:`depth_subset_size` (``max(1, round(fraction * len(ids)))`` for fraction > 0).
    Subsets for the same seed are nested (1% ⊂ 10% ⊂ 100%) because they are prefixes of one ranking.
    """
    ranking = depth_ranking(ids, seed)
    return set(ranking[: depth_subset_size(len(ranking), fraction)])


class FaceParsingDataset(Dataset):
    """One split of an RGB-D face-parsing dataset.

    Each item is a dict::

        rgb        float32 (3, H, W) in [0, 1] (not normalised: see faceparse.data.normalize)
        depth      float32 (1, H, W) nearness in [0, 1]; all zeros when hidden or absent
        label      int64   (H, W), 255 = ignore
        has_depth  bool tensor: the depth is real and may be trained on
        id         str

    ``depth_fraction``/``seed`` choose the depth-annotated subset (:func:`depth_subset`); samples outside
    it have ``has_depth`` False. A sample inside it with no depth file also gets ``has_depth`` False,
    unless ``require_depth`` is set, which makes that a :class:`DataError` (raised when the dataset is
    opened). ``transform`` (see faceparse.data.transforms) is called as ``transform(sample, rng)`` on
    numpy arrays with a generator derived from (seed, epoch, index): augmentation is reproducible and
    independent of how DataLoader workers split the indices. Call :meth:`set_epoch` each epoch.

    ``root`` may also be a packed dataset (``faceparse pack``, :mod:`faceparse.data.packed`): the
    samples are then read from memory-mapped arrays, the same values with no decoding.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        depth_fraction: float = 1.0,
        seed: int = 0,
        transform: Transform | None = None,
        require_depth: bool = False,
    ):
        self.layout: Layout = open_layout(root)
        self.split = split
        self.ids: list[str] = self.layout.split_ids(split)
        if not self.ids:
            raise DataError(self.layout.split_file(split), f"split {split!r} lists no samples")
        self.seed = seed
        self.depth_fraction = depth_fraction
        self.transform = transform
        self.require_depth = require_depth
        self.epoch = 0
        self.depth_ids = depth_subset(self.ids, depth_fraction, seed)
        self._packed: PackedSplit | None = None
        if is_packed(self.layout.root):
            self._packed = PackedSplit(self.layout.root, split)
            if self._packed.ids != self.ids:
                raise DataError(
                    self.layout.split_file(split),
                    f"lists other ids than packed.json's split {split!r} ({len(self.ids)} here, "
                    f"{len(self._packed.ids)} packed); re-pack, or restore the split file",
                )
            self._paths: list[SamplePaths] = []
            self._depth_files: list[bool] = self._packed.has_depth.tolist()
        else:
            self._paths = [self.layout.paths(sid) for sid in self.ids]
            self._depth_files = [p.depth is not None for p in self._paths]
        self._check_files()

    @property
    def scheme(self) -> LabelScheme:
        return self.layout.scheme

    def _check_files(self) -> None:
        """Fail early, naming the first missing file and how many are missing."""
        if self._packed is None:  # a packed sample always has rgb and label
            require_files(self.layout, self.split, self._paths)
        if self.require_depth:
            pairs = zip(self.ids, self._depth_files, strict=True)
            missing = [sid for sid, has in pairs if not has and sid in self.depth_ids]
            if missing:
                where = self.layout.root / "depth" / f"{missing[0]}.png"
                raise DataError(
                    self._packed.manifest_path if self._packed is not None else where,
                    f"no depth file for sample {missing[0]!r} of split {self.split!r} "
                    f"({len(missing)} of {len(self.ids)} samples lack one)",
                )

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (the depth subset never changes)."""
        self.epoch = int(epoch)

    def depth_indices(self) -> list[int]:
        """Indices of the samples whose depth may be used (e.g. for a depth-only ``Subset``)."""
        return [i for i, sid in enumerate(self.ids) if sid in self.depth_ids and self._depth_files[i]]

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> dict[str, Any]:
        """The raw numpy sample (before transform): rgb uint8 HxWx3, depth float32 HxW, label uint8 HxW."""
        if self._packed is not None:
            return self._load_packed(index)
        paths: SamplePaths = self._paths[index]
        reader = read_depth if paths.id in self.depth_ids else None  # outside the subset: hidden
        rgb, label, depth = read_sample_files(paths, self.scheme, reader)
        has_depth = depth is not None
        if depth is None:
            depth = np.zeros(label.shape, np.float32)
        return {"rgb": rgb, "depth": depth, "label": label, "has_depth": has_depth, "id": paths.id}

    def _load_packed(self, index: int) -> dict[str, Any]:
        assert self._packed is not None
        used = self.ids[index] in self.depth_ids  # outside the depth-annotated subset: hidden
        sample = self._packed.read(index, depth=used)
        path = self._packed.chunk_file("label", index)
        try:
            check_label_ids(path, sample["label"], self.scheme)
        except DataError as e:
            raise DataError(path, f"sample {sample['id']!r}: {e.problem}") from None
        return {**sample, "has_depth": sample["has_depth"] and used}

    def sample_rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.load(index)
        if self.transform is not None:
            sample = self.transform(sample, self.sample_rng(index))
        return to_tensors(sample)


def to_tensors(sample: dict[str, Any], *, stored_types: bool = False) -> dict[str, Any]:
    """numpy sample → the Dataset's tensor dict (rgb (3,H,W) [0,1], depth (1,H,W), label int64 (H,W)).

    ``stored_types`` keeps RGB and labels uint8 (rgb (3,H,W) 0..255), a quarter of float32's bytes to move
    (the device augmentation's worker output, faceparse.data.device_augment). Depth is float32 nearness
    either way, zeros when hidden.
    """
    stored = np.uint8 if stored_types else None  # otherwise as the transform left them (uint8 or float)
    rgb = torch.from_numpy(_writable(sample["rgb"], stored)).permute(2, 0, 1)  # (H,W,3) → (3, H, W)
    label = torch.from_numpy(_writable(sample["label"], stored))  # (H, W)
    has_depth = bool(sample["has_depth"])
    depth = torch.from_numpy(_writable(sample["depth"], np.float32)).unsqueeze(0)  # (H, W) → (1, H, W)
    if not has_depth:
        depth = torch.zeros_like(depth)
    return {
        "rgb": rgb if stored_types else rgb.float().div_(255.0),
        "depth": depth,
        "label": label if stored_types else label.long(),
        "has_depth": torch.tensor(has_depth),
        "id": sample["id"],
    }


def _writable(array: np.ndarray, dtype: type | None = None) -> np.ndarray:
    """C-contiguous and writable (PIL hands out read-only views, which torch warns about)."""
    return np.require(array, dtype=dtype, requirements=["C", "W"])
