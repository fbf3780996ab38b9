"""Dataset-level face-parsing and depth-translation metrics (paper §4.1, FACTS §1).

The protocol, as in EAGRNet, DML-CSR, FaRL and SegFace:

* ONE confusion matrix is summed over every pixel of every test image (pixels labelled
  :data:`~faceparse.labels.IGNORE_INDEX` excluded);
* per-class F1 = 2·TP / (2·TP + FP + FN) is computed from that matrix, once;
* mean F1 averages the per-class F1 of every class except background.

A per-image or per-batch average of F1 (the first author's sklearn script, FACTS §5) is NOT this
protocol and gives different numbers; nothing here averages over images.

Counting (:class:`ConfusionMatrix`) is kept apart from how F1 is averaged (:func:`f1_from_confusion`,
:func:`mean_f1`, :func:`group_f1`), so the same counts serve per-class, merged-class (Helen's eyes,
brows, mouth, overall) and mean scores.

A class that appears neither in the ground truth nor in the prediction of the whole split has an
undefined F1 (0/0): it is NaN and left out of every mean. A class that is absent from the ground truth
but predicted somewhere scores 0 (all its pixels are false positives).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from faceparse.eval.results import MaskScores, ParsingScores, TranslationScores
from faceparse.eval.results import jsonable as jsonable  # re-exported: it used to live here
from faceparse.labels import IGNORE_INDEX, LabelScheme, get_scheme
from faceparse.utils.io import DataError


def _is_tensor(x: Any) -> bool:
    # Scoring numpy arrays (e.g. `faceparse score-masks`) never imports torch; a tensor implies it is loaded.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


# --- counting ------------------------------------------------------------------------------------------


class ConfusionMatrix:
    """Pixel confusion matrix accumulated over a whole split (rows = ground truth, cols = prediction).

    ``update`` takes predicted and ground-truth id maps of the same shape, as torch tensors (any
    device: GPU tensors are counted there with ``torch.bincount``, CPU tensors with numpy, which is
    faster on CPU) or numpy arrays. Pixels whose target equals
    ``ignore_index`` are skipped. Matrices from several processes are summed with :meth:`merge`
    or ``+``; :meth:`from_counts` rebuilds one from an all-reduced count array.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._counts = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    @classmethod
    def from_counts(cls, counts: Any, ignore_index: int = IGNORE_INDEX) -> ConfusionMatrix:
        """A matrix holding ``counts`` ((C, C) integers, numpy or torch), e.g. after an all-reduce."""
        arr = counts.detach().cpu().numpy() if _is_tensor(counts) else np.asarray(counts)
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise ValueError(f"counts must be a square (C, C) array, got shape {arr.shape}")
        cm = cls(arr.shape[0], ignore_index)
        cm._counts = arr.astype(np.int64, copy=True)
        return cm

    def update(self, pred: Any, target: Any) -> None:
        """Add one batch: integer id maps ``pred`` and ``target`` of equal shape ((H, W), (B, H, W), ...)."""
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}"
            )
        if _is_tensor(pred) or _is_tensor(target):
            self._counts += self._count_torch(pred, target)
        else:
            self._counts += self._count_numpy(np.asarray(pred), np.asarray(target))

    def _check_ids(self, pred_min: int, pred_max: int, target_min: int, target_max: int) -> None:
        c = self.num_classes
        if pred_min < 0 or pred_max >= c:
            raise ValueError(f"predicted ids must lie in [0, {c - 1}], got [{pred_min}, {pred_max}]")
        if target_min < 0 or target_max >= c:
            raise ValueError(
                f"target ids must lie in [0, {c - 1}] or equal ignore_index {self.ignore_index}, "
                f"got [{target_min}, {target_max}]"
            )

    def _count_numpy(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        for name, arr in (("prediction", pred), ("target", target)):
            if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
                raise TypeError(
                    f"{name} must hold integer class ids, got dtype {arr.dtype} (take argmax of logits)"
                )
        valid = target != self.ignore_index
        t = target[valid].astype(np.int64)  # (N,) valid pixels only
        p = pred[valid].astype(np.int64)
        if t.size == 0:
            return np.zeros_like(self._counts)
        self._check_ids(int(p.min()), int(p.max()), int(t.min()), int(t.max()))
        c = self.num_classes
        return np.bincount(t * c + p, minlength=c * c).reshape(c, c)

    def _count_torch(self, pred: Any, target: Any) -> np.ndarray:
        import torch

        pred = torch.as_tensor(pred)
        target = torch.as_tensor(target, device=pred.device)
        for name, t in (("prediction", pred), ("target", target)):
            if t.is_floating_point() or t.is_complex():
                raise TypeError(f"{name} must hold integer class ids (argmax of logits), got {t.dtype}")
        if pred.device.type == "cpu":  # numpy counts 5-10x faster than torch.bincount here (docs/results.md)
            return self._count_numpy(pred.detach().numpy(), target.detach().numpy())
        return self._count_on_device(pred, target)

    def _count_on_device(self, pred: Any, target: Any) -> np.ndarray:
        """Count with ``torch.bincount`` where the tensors live (a GPU), syncing once per call."""
        import torch

        if target.numel() == 0:
            return np.zeros_like(self._counts)
        c = self.num_classes
        # No boolean indexing (a device sync per call): ignored pixels go to an extra bin, dropped below.
        valid = target != self.ignore_index
        t = torch.where(valid, target.long(), 0)
        p = torch.where(valid, pred.long(), 0)
        lims = torch.stack([p.min(), p.max(), t.min(), t.max()]).tolist()  # one device sync
        self._check_ids(*lims)
        index = torch.where(valid, t * c + p, c * c).flatten()  # (N,)
        counts = torch.bincount(index, minlength=c * c + 1)[: c * c].reshape(c, c)
        return counts.cpu().numpy().astype(np.int64)

    def compute(self) -> np.ndarray:
        """(C, C) int64 counts; ``[i, j]`` = pixels of ground-truth class i predicted as j (a copy)."""
        return self._counts.copy()

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts into this one (in place) and return self."""
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix into a {self.num_classes}-class one"
            )
        self._counts += other._counts
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return ConfusionMatrix.from_counts(self._counts, self.ignore_index).merge(other)

    def reset(self) -> None:
        self._counts[:] = 0

    @property
    def total(self) -> int:
        """Number of counted (non-ignored) pixels."""
        return int(self._counts.sum())

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixels={self.total})"


# --- averaging -----------------------------------------------------------------------------------------


def _as_counts(cm: ConfusionMatrix | np.ndarray) -> np.ndarray:
    arr = cm.compute() if isinstance(cm, ConfusionMatrix) else np.asarray(cm)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {arr.shape}")
    return arr.astype(np.float64)


def _f1(tp: np.ndarray | float, fp: np.ndarray | float, fn: np.ndarray | float) -> np.ndarray:
    """2TP / (2TP + FP + FN); NaN where the denominator is 0 (class absent from prediction and truth)."""
    num = 2.0 * np.asarray(tp, dtype=np.float64)
    den = num + np.asarray(fp, dtype=np.float64) + np.asarray(fn, dtype=np.float64)
    out = np.full(np.shape(den), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def f1_from_confusion(cm: ConfusionMatrix | np.ndarray) -> np.ndarray:
    """(C,) per-class F1 in [0, 1] (NaN for a class absent from both prediction and ground truth)."""
    counts = _as_counts(cm)
    tp = np.diag(counts)
    fp = counts.sum(axis=0) - tp  # predicted as the class, truth is another
    fn = counts.sum(axis=1) - tp  # truth is the class, predicted as another
    return _f1(tp, fp, fn)


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def mean_f1(cm: ConfusionMatrix | np.ndarray, background: int | None = 0) -> float:
    """Mean of per-class F1 over every class except ``background`` (FACTS §1); NaN classes are skipped."""
    f1 = f1_from_confusion(cm)
    keep = np.ones(f1.shape, dtype=bool)
    if background is not None:
        keep[background] = False
    return _nanmean(f1[keep])


def group_f1(cm: ConfusionMatrix | np.ndarray, ids: Iterable[int]) -> float:
    """F1 of the union of ``ids`` merged into ONE foreground class against everything else.

    Used for Helen's eyes / brows / mouth and "overall" (brows + eyes + nose + mouth, FACTS §1):
    confusions between merged members (e.g. left eye predicted as right eye) count as correct.
    """
    counts = _as_counts(cm)
    member = np.zeros(counts.shape[0], dtype=bool)
    member[list(ids)] = True
    if not member.any():
        raise ValueError("group_f1 needs at least one class id")
    tp = counts[np.ix_(member, member)].sum()
    fp = counts[np.ix_(~member, member)].sum()
    fn = counts[np.ix_(member, ~member)].sum()
    return float(_f1(tp, fp, fn))


def _percent(x: float) -> float:
    return float(x) * 100.0


def parsing_scores(cm: ConfusionMatrix | np.ndarray, scheme: str | LabelScheme) -> ParsingScores:
    """Paper-style scores in percent from one dataset-level confusion matrix.

    ``per_class`` holds every foreground class in id order and ``mean_f1`` their mean; for schemes with
    evaluation groups (helen11, lapa11) ``groups`` holds each group's merged F1, and for Helen
    ``overall_f1`` the merged brows + eyes + nose + mouth F1, the number Helen results are ranked by.
    Undefined F1 values are ``nan`` (see :class:`~faceparse.eval.results.ParsingScores`).
    """
    scheme = get_scheme(scheme)
    counts = _as_counts(cm)
    if counts.shape[0] != scheme.num_classes:
        raise ValueError(
            f"confusion matrix has {counts.shape[0]} classes, scheme {scheme.name} has {scheme.num_classes}"
        )
    f1 = f1_from_confusion(counts)
    groups = {g: _percent(group_f1(counts, scheme.group_ids(g))) for g in scheme.groups}
    helen_overall = scheme.name.startswith("helen") and "overall" in scheme.groups
    return ParsingScores(
        scheme=scheme.name,
        pixels=int(counts.sum()),
        per_class={name: _percent(f1[i]) for i, name in enumerate(scheme.classes) if i != 0},
        mean_f1=_percent(mean_f1(counts, background=0)),
        groups=groups,
        overall_f1=groups["overall"] if helen_overall else None,
    )


# --- depth translation ---------------------------------------------------------------------------------


class DepthL1:
    """Mean absolute error between predicted and ground-truth nearness (paper Table 4).

    Both maps are on the nearness scale [0, 1] of :mod:`faceparse.data.encoding` (convert a generator's
    tanh output with ``faceparse.data.normalize.depth_from_network`` first). Errors are summed over the
    whole split and divided by the pixel count once (dataset-level, like the confusion matrix): ``l1``
    over all pixels, ``l1_fg`` over the foreground, i.e. pixels whose ground-truth depth is > 0 (a surface).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.abs_sum = 0.0
        self.count = 0
        self.abs_sum_fg = 0.0
        self.count_fg = 0

    def update(self, pred: Any, target: Any) -> None:
        """Add a batch of nearness maps (torch tensors on any device, or numpy arrays) of equal shape."""
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}"
            )
        if _is_tensor(pred) or _is_tensor(target):
            import torch

            pred = torch.as_tensor(pred).double()
            target = torch.as_tensor(target, device=pred.device).double()
            err = (pred - target).abs()
            fg = target > 0
            sums = torch.stack([err.sum(), err[fg].sum(), fg.sum().double()]).tolist()  # one device sync
            abs_sum, abs_sum_fg, count_fg = sums
        else:
            pred = np.asarray(pred, dtype=np.float64)
            target = np.asarray(target, dtype=np.float64)
            err = np.abs(pred - target)
            fg = target > 0
            abs_sum, abs_sum_fg, count_fg = float(err.sum()), float(err[fg].sum()), int(fg.sum())
        self.abs_sum += abs_sum
        self.count += int(np.prod(tuple(target.shape)))
        self.abs_sum_fg += abs_sum_fg
        self.count_fg += int(count_fg)

    def merge(self, other: DepthL1) -> DepthL1:
        self.abs_sum += other.abs_sum
        self.count += other.count
        self.abs_sum_fg += other.abs_sum_fg
        self.count_fg += other.count_fg
        return self

    def __add__(self, other: DepthL1) -> DepthL1:
        return DepthL1().merge(self).merge(other)

    def compute(self) -> TranslationScores:
        """``l1``: mean over all pixels, ``l1_fg``: mean over gt-foreground pixels (NaN if none)."""
        return TranslationScores(
            l1=self.abs_sum / self.count if self.count else math.nan,
            l1_fg=self.abs_sum_fg / self.count_fg if self.count_fg else math.nan,
        )


# --- scoring folders of predicted label maps --------------------------------------------------------------


def _png_stems(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(folder, f"{what} folder not found")
    files = {p.stem: p for p in sorted(folder.glob("*.png")) if p.is_file()}
    if not files:
        raise DataError(folder, f"{what} folder holds no .png label maps")
    return files


def _names(stems: Iterable[str], limit: int = 5) -> str:
    stems = sorted(stems)
    head = ", ".join(f"{s}.png" for s in stems[:limit])
    return head + (f" (and {len(stems) - limit} more)" if len(stems) > limit else "")


def match_mask_files(
    pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, *, ignore_missing: bool = False
) -> list[tuple[str, Path, Path]]:
    """Pair ``pred_dir/<stem>.png`` with ``gt_dir/<stem>.png``; sorted (stem, pred, gt) triples.

    Different file sets are an error naming the first few unmatched files, unless ``ignore_missing``,
    which scores only the stems present in both folders.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    preds = _png_stems(pred_dir, "prediction")
    gts = _png_stems(gt_dir, "ground-truth")
    missing = gts.keys() - preds.keys()
    extra = preds.keys() - gts.keys()
    if (missing or extra) and not ignore_missing:
        problems = []
        if missing:
            problems.append(f"{len(missing)} ground-truth maps have no prediction: {_names(missing)}")
        if extra:
            problems.append(f"{len(extra)} predictions have no ground truth in {gt_dir}: {_names(extra)}")
        raise DataError(pred_dir, "; ".join(problems) + " (pass --ignore-missing to score the common files)")
    common = sorted(gts.keys() & preds.keys())
    if not common:
        raise DataError(pred_dir, f"no prediction shares a file name with the ground truth in {gt_dir}")
    return [(s, preds[s], gts[s]) for s in common]


def _check_pair(
    pred: np.ndarray, gt: np.ndarray, pred_path: Path, gt_path: Path, scheme: LabelScheme
) -> None:
    if pred.shape != gt.shape:
        size_pred, size_gt = f"{pred.shape[1]}x{pred.shape[0]}", f"{gt.shape[1]}x{gt.shape[0]}"
        raise DataError(pred_path, f"size {size_pred} differs from the ground truth {gt_path} ({size_gt})")
    c = scheme.num_classes
    if pred.size and int(pred.max()) >= c:
        raise DataError(
            pred_path, f"predicted id {int(pred.max())} is outside scheme {scheme.name} (ids 0..{c - 1})"
        )
    bad_gt = (gt >= c) & (gt != IGNORE_INDEX)
    if bad_gt.any():
        raise DataError(
            gt_path,
            f"label id {int(gt[bad_gt].max())} is outside scheme {scheme.name} (0..{c - 1}, {IGNORE_INDEX})",
        )


def score_masks(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    scheme: str | LabelScheme,
    *,
    ignore_missing: bool = False,
    on_image: Callable[[int, int], None] | None = None,
) -> MaskScores:
    """Score predicted 8-bit id PNGs against ground-truth PNGs of the same names (dataset-level protocol).

    Returns a :class:`~faceparse.eval.results.MaskScores`: the :func:`parsing_scores` of every scored
    pair, ``images`` (how many pairs were scored) and ``missing`` (ground-truth stems with no prediction,
    skipped under ``ignore_missing``). ``on_image(done, total)`` is called after each pair (for progress
    bars). Bad files raise :class:`DataError` naming the file.
    """
    from faceparse.data.format import read_label  # PIL only

    scheme = get_scheme(scheme)
    pairs = match_mask_files(pred_dir, gt_dir, ignore_missing=ignore_missing)
    gt_stems = set(_png_stems(Path(gt_dir), "ground-truth"))
    cm = ConfusionMatrix(scheme.num_classes)
    for done, (_, pred_path, gt_path) in enumerate(pairs, start=1):
        pred, gt = read_label(pred_path), read_label(gt_path)  # (H, W) uint8 each
        _check_pair(pred, gt, pred_path, gt_path, scheme)
        cm.update(pred, gt)
        if on_image is not None:
            on_image(done, len(pairs))
    missing = sorted(gt_stems - {s for s, _, _ in pairs})
    return MaskScores(parsing=parsing_scores(cm, scheme), images=len(pairs), missing=missing)
