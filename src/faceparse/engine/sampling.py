"""Batches as a pure function of (seed, iteration): exact resume and identical runs on any worker count.

Each iteration's global batch is drawn from a pool of dataset indices by walking seeded per-epoch
permutations; rank ``r`` of ``w`` takes every ``w``-th element. Each element carries its own seed, from
which :class:`SeededItems` draws the sample's augmentation, so augmentation does not depend on which
worker loads it or on what ran before. Resuming at iteration ``k`` therefore sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from faceparse.utils.io import DataError

_MASK = 2**31 - 1


def mix_seed(*parts: int) -> int:
    """A 31-bit seed derived from integers (numpy's SeedSequence does the mixing)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0]) & _MASK


class Pool:
    """Draws positions ``p = it·B + j`` from seeded permutations of ``indices`` (one per epoch)."""

    def __init__(self, indices: Sequence[int], seed: int, stream: int):
        if not indices:
            raise ValueError("cannot sample from an empty pool of training samples")
        self.indices = list(indices)
        self.seed = seed
        self.stream = stream
        self._epoch = -1
        self._perm: np.ndarray | None = None

    def draw(self, iteration: int, batch: int) -> list[int]:
        out = []
        for position in range(iteration * batch, (iteration + 1) * batch):
            epoch, offset = divmod(position, len(self.indices))
            if epoch != self._epoch:
                rng = np.random.default_rng([self.seed, self.stream, epoch])
                self._perm, self._epoch = rng.permutation(len(self.indices)), epoch
            assert self._perm is not None  # drawn above on the first position: _epoch starts at -1
            out.append(self.indices[int(self._perm[offset])])
        return out


class IterationBatches(Sampler[list[tuple[int, int]]]):
    """A batch sampler for iterations ``[start, end)``: this rank's ``(index, sample_seed)`` pairs.

    ``pools`` is a list of ``(Pool, global_count)``; each iteration concatenates every pool's share, so
    the joint stage gets [depth-annotated half | RGB-labelled half] in a fixed order.
    """

    def __init__(
        self, pools: list[tuple[Pool, int]], seed: int, start: int, end: int, rank: int = 0, world: int = 1
    ):
        for _, count in pools:
            if count % world:
                raise ValueError(
                    f"a per-pool batch of {count} cannot be split evenly across {world} processes"
                )
        self.pools, self.seed, self.start, self.end, self.rank, self.world = (
            pools,
            seed,
            start,
            end,
            rank,
            world,
        )

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        items = []
        for pool, count in self.pools:
            drawn = pool.draw(iteration, count)
            for j in range(self.rank, count, self.world):
                items.append((drawn[j], mix_seed(self.seed, pool.stream, iteration, j)))
        return items

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for iteration in range(self.start, self.end):
            yield self.batch(iteration)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - code that uses the legacy global RNG
    torch.manual_seed(seed)


class LoadError(DataError):
    """A :class:`DataError` met loading a sample, made to survive the trip out of a DataLoader worker.

    The DataLoader re-raises a worker's exception in the main process as ``type(e)(message)``, the
    message being the worker's formatted traceback (or as a RuntimeError, when the type cannot be built
    from one string). So this error carries its path and problem in a note, a tagged JSON line that the
    formatted traceback includes, and is rebuilt from such a message when given one string.
    """

    TAG = "faceparse-load-error: "

    def __init__(self, path: str | os.PathLike | None, problem: str | None = None):
        if problem is None:  # rebuilt by the DataLoader from the worker's formatted traceback
            text = str(path)
            path, problem = json.loads(text[text.rindex(self.TAG) + len(self.TAG) :].splitlines()[0])
        super().__init__(path, problem)
        self.add_note(self.TAG + json.dumps([None if self.path is None else str(self.path), problem]))


class SeededItems(Dataset):
    """Wraps a map-style dataset: item ``(index, seed)`` loads ``index``, augmentation drawn from ``seed``.

    A :class:`~faceparse.data.dataset.FaceParsingDataset` gets its transform called with
    ``np.random.default_rng(seed)``; any other dataset has the global python/numpy/torch RNGs seeded first.
    """

    def __init__(self, dataset: Dataset, planned: bool = False):
        self.dataset = dataset
        # data.augment_on=device: draw the augmentation (the same draws) but leave it to the device
        # (faceparse.data.device_augment); the item then holds the loaded sample and its plan
        self.planned = planned

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        try:
            return self._get(*item)
        except DataError as e:
            raise LoadError(e.path, e.problem) from None

    def _get(self, index: int, seed: int) -> Any:
        load = getattr(self.dataset, "load", None)
        if load is None:
            seed_everything(seed)
            return self.dataset[index]
        from faceparse.data.dataset import to_tensors

        sample = load(index)
        transform = getattr(self.dataset, "transform", None)
        if self.planned:
            from faceparse.data.device_augment import planned_tensors

            if transform is None:
                raise ValueError("data.augment_on=device needs a training transform to draw from")
            plan = transform.plan(sample["label"].shape, np.random.default_rng(seed))
            return planned_tensors(sample, plan)
        if transform is not None:
            sample = transform(sample, np.random.default_rng(seed))
        return to_tensors(sample)
