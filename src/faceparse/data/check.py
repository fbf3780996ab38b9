"""Validate an RGB-D face-parsing dataset and count its classes (``faceparse check-data`` / ``stats``).

:func:`check_dataset` decodes every listed file (in a thread pool: PIL's decoders release the GIL)
and reports EVERY problem it finds, each with the offending file: missing partner files, size
mismatches, out-of-range label ids, unreadable or truncated images, split entries with no files,
empty or missing folders and splits, ids in several splits, and ``dataset.json`` counts that
disagree with the split files. The same pass counts label pixels and images per class and split,
which ``faceparse stats`` prints as the paper's Table 1 row and class shares.

A packed dataset (``faceparse pack``, :mod:`faceparse.data.packed`) is checked from its arrays: the
manifest, every chunk file's presence, dtype and shape, an unfinished pack, the label ids, and the
split files against the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from faceparse.data.format import (
    DATASET_JSON,
    RGB_EXTS,
    SPLITS,
    Layout,
    decoded_size,
    label_range_problem,
    open_layout,
    read_depth,
    read_label,
)
from faceparse.data.packed import (
    ARRAYS,
    PACKED_JSON,
    PackedManifest,
    chunk_path,
    is_packed,
    open_chunk,
    read_manifest,
)
from faceparse.labels import IGNORE_INDEX, LabelScheme
from faceparse.utils.io import DataError, read_json

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

ERROR = "error"
WARNING = "warning"
_MAX_LISTED = 10  # ids quoted in one message; the count is always given in full


@dataclass(frozen=True)
class Problem:
    """One finding: the file it concerns and what is wrong with it."""

    path: Path
    message: str
    severity: str = ERROR

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class CheckReport:
    """Everything :func:`check_dataset` found.

    ``pixel_counts[split]`` / ``image_counts[split]`` are (256,) int64 histograms over label VALUES (so
    out-of-range ids and 255 = ignore are counted too); :meth:`class_pixels` slices the scheme's classes.
    """

    root: Path
    layout: str = ""
    scheme: LabelScheme | None = None
    problems: list[Problem] = field(default_factory=list)
    split_counts: dict[str, int] = field(default_factory=dict)
    depth_counts: dict[str, int] = field(default_factory=dict)
    pixel_counts: dict[str, np.ndarray] = field(default_factory=dict)
    image_counts: dict[str, np.ndarray] = field(default_factory=dict)
    total: int = 0  # distinct ids over the checked splits
    checked: int = 0  # distinct samples decoded

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def _sum(self, table: dict[str, np.ndarray], split: str | None) -> np.ndarray:
        rows = [table[split]] if split is not None else list(table.values())
        if not rows:
            return np.zeros(256, np.int64)
        # numpy's stubs allow a scalar result; the axis-0 sum of (256,) histograms is a (256,) array
        return cast(np.ndarray, np.sum(rows, axis=0, dtype=np.int64))

    def class_pixels(self, split: str | None = None) -> np.ndarray:
        """(num_classes,) labelled pixels per class, for one split or all (None)."""
        return self._sum(self.pixel_counts, split)[: self._num_classes()]

    def class_images(self, split: str | None = None) -> np.ndarray:
        """(num_classes,) number of label maps containing each class."""
        return self._sum(self.image_counts, split)[: self._num_classes()]

    def ignored_pixels(self, split: str | None = None) -> int:
        return int(self._sum(self.pixel_counts, split)[IGNORE_INDEX])

    def class_shares(self, split: str | None = None) -> np.ndarray:
        """(num_classes,) fraction of the labelled (non-ignore, in-range) pixels per class."""
        pixels = self.class_pixels(split).astype(np.float64)
        total = pixels.sum()
        return pixels / total if total > 0 else pixels

    def table1_row(self) -> dict[str, int]:
        """Paper Table 1: train / val / test / total sample counts."""
        row = {s: self.split_counts.get(s, 0) for s in SPLITS}
        row["total"] = self.total
        return row

    def _num_classes(self) -> int:
        return self.scheme.num_classes if self.scheme is not None else 0


@dataclass
class _SampleResult:
    problems: list[Problem]
    histogram: np.ndarray | None  # (256,) label value counts, None when the label is unreadable/absent
    has_depth: bool


class _Checker:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.root = layout.root
        self.scheme = layout.scheme
        self.released = layout.kind == "released"
        has_rgb_dirs = (self.root / "rgb").is_dir() or (self.root / "label").is_dir()
        self.expect_rgb_label = not self.released or has_rgb_dirs  # released folders may be depth-only
        coverage = layout.info.depth.coverage
        if coverage == "all" and layout.info.depth.source == "none":
            coverage = "none"  # the converters mark RGB-only output with depth.source "none"
        self.expect_depth = coverage == "all"
        self.depth_allowed = coverage != "none"
        size = layout.info.image_size
        self.image_size = tuple(size) if size else None

    def expected(self, kind: str, sid: str) -> Path:
        return self.root / kind / f"{sid}.png"

    def sample(self, sid: str, split_file: Path) -> _SampleResult:
        paths = self.layout.paths(sid)
        problems: list[Problem] = []
        present = {k: getattr(paths, k) for k in ("rgb", "label", "depth")}
        if not any(present.values()):
            where = f"rgb/{sid}{{{','.join(RGB_EXTS)}}}, label/{sid}.png, depth/{sid}.png"
            problems.append(Problem(split_file, f"split entry {sid!r} does not exist (none of {where})"))
            return _SampleResult(problems, None, False)
        problems += self._missing_partners(sid, present)
        sizes: dict[str, tuple[int, int]] = {}  # (width, height) of each readable file
        histogram = None
        for kind, path in present.items():
            if path is None:
                continue
            try:
                if kind == "label":
                    label = read_label(path)
                    histogram = np.bincount(label.ravel(), minlength=256).astype(np.int64)
                    sizes[kind] = (label.shape[1], label.shape[0])
                elif kind == "depth":
                    depth = read_depth(path)  # also checks it is single-channel 8/16-bit
                    sizes[kind] = (depth.shape[1], depth.shape[0])
                else:  # the RGB pixels are not needed: a full decode is enough (twice as fast)
                    sizes[kind] = decoded_size(path)
            except DataError as e:
                problems.append(Problem(e.path or path, e.problem))
        problems += self._size_problems(present, sizes)
        if histogram is not None:
            problems += self._range_problems(present["label"], histogram)
        if paths.meta is not None:
            try:
                read_json(paths.meta)
            except DataError as e:
                problems.append(Problem(paths.meta, e.problem))
        return _SampleResult(problems, histogram, "depth" in sizes)

    def _missing_partners(self, sid: str, present: dict[str, Path | None]) -> list[Problem]:
        problems = []
        existing = ", ".join(str(p.relative_to(self.root)) for p in present.values() if p is not None)
        wanted = []
        if self.expect_rgb_label:
            wanted += ["rgb", "label"]
        if self.expect_depth:
            wanted.append("depth")
        for kind in wanted:
            if present[kind] is None:
                target = self.expected(kind, sid)
                if kind == "rgb":
                    target = target.with_suffix("")
                    msg = f"missing rgb image ({'/'.join(RGB_EXTS)}) for sample {sid!r}; it has {existing}"
                else:
                    msg = f"missing {kind} for sample {sid!r}; it has {existing}"
                    if kind == "depth":
                        msg += " (set depth.coverage to 'partial' in dataset.json if some samples lack depth)"
                problems.append(Problem(target, msg))
        if present["depth"] is not None and not self.depth_allowed:
            problems.append(
                Problem(present["depth"], "depth file in a dataset whose depth.coverage is 'none'", WARNING)
            )
        return problems

    def _size_problems(
        self, present: dict[str, Path | None], sizes: dict[str, tuple[int, int]]
    ) -> list[Problem]:
        problems = []
        located = {kind: path for kind, path in present.items() if path is not None}  # all kinds in sizes
        ref = "rgb" if "rgb" in sizes else "label"
        for kind in ("label", "depth"):
            if kind != ref and kind in sizes and ref in sizes and sizes[kind] != sizes[ref]:
                problems.append(
                    Problem(
                        located[kind],
                        f"size {_wh(sizes[kind])} differs from {ref} {_wh(sizes[ref])} ({located[ref]})",
                    )
                )
        if self.image_size is not None and ref in sizes and sizes[ref] != self.image_size:
            problems.append(
                Problem(
                    located[ref],
                    f"size {_wh(sizes[ref])} differs from dataset.json image_size {_wh(self.image_size)}",
                )
            )
        return problems

    def _range_problems(self, label_path: Path, histogram: np.ndarray) -> list[Problem]:
        problem = label_range_problem(histogram, self.scheme)
        return [] if problem is None else [Problem(label_path, problem)]


def _wh(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def _quote(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:_MAX_LISTED])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > _MAX_LISTED else "")


def check_dataset(
    root: str | os.PathLike,
    splits: Sequence[str] | None = None,
    *,
    workers: int | None = None,
    on_progress: OnProgress | None = None,
) -> CheckReport:
    """Validate a dataset folder (faceparse or released layout) and count its classes.

    ``splits``: the splits to check (default: all of train/val/test, each of which must exist).
    ``on_progress(done, total, info)`` (:mod:`faceparse.utils.progress`) is called once before the first
    sample and after each decoded sample (``info`` is ``""``). Never raises on bad data: every
    problem is in the report (``report.ok`` is False when any is an error).
    """
    root = Path(root)
    report = CheckReport(root=root)
    if root.is_dir() and not any(root.iterdir()):
        report.problems.append(Problem(root, "empty folder: no dataset.json, splits or images"))
        return report
    try:
        layout = open_layout(root)
    except DataError as e:
        report.problems.append(Problem(e.path or root, e.problem))
        return report
    report.layout, report.scheme = layout.kind, layout.scheme
    if is_packed(layout.root):
        report.layout = "packed"
        _check_packed(layout, report, splits, on_progress)
        return report
    checker = _Checker(layout)
    report.problems += _folder_problems(checker)

    split_ids = _read_splits(layout, splits or SPLITS, report)
    report.problems += _overlap_problems(layout, split_ids)
    first_split: dict[str, str] = {}
    for split, ids in split_ids.items():
        for sid in ids:
            first_split.setdefault(sid, split)
    report.total = len(first_split)

    results = _run_samples(checker, layout, first_split, workers, on_progress)
    report.checked = len(results)
    for res in results.values():
        report.problems += res.problems
    for split, ids in split_ids.items():
        pixels, images = np.zeros(256, np.int64), np.zeros(256, np.int64)
        depth = 0
        for sid in ids:
            res = results[sid]
            depth += res.has_depth
            if res.histogram is not None:
                pixels += res.histogram
                images += res.histogram > 0
        report.pixel_counts[split], report.image_counts[split] = pixels, images
        report.depth_counts[split] = depth

    if splits is None:
        report.problems += _orphan_problems(checker, set(first_split))
    report.problems += _count_problems(layout, report, split_ids, full=splits is None)
    return report


def _run_samples(
    checker: _Checker,
    layout: Layout,
    first_split: dict[str, str],
    workers: int | None,
    on_progress: OnProgress | None,
) -> dict[str, _SampleResult]:
    ids = list(first_split)
    workers = workers or min(8, (os.cpu_count() or 1) + 1)
    results: dict[str, _SampleResult] = {}
    if on_progress is not None:
        on_progress(0, len(ids), "")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = pool.map(lambda sid: checker.sample(sid, layout.split_file(first_split[sid])), ids)
        for done, (sid, res) in enumerate(zip(ids, futures, strict=True), start=1):
            results[sid] = res
            if on_progress is not None:
                on_progress(done, len(ids), "")
    return results


def _read_splits(layout: Layout, splits: Sequence[str], report: CheckReport) -> dict[str, list[str]]:
    split_ids: dict[str, list[str]] = {}
    for split in splits:
        path = layout.split_file(split)
        if not path.is_file():
            report.problems.append(Problem(path, f"missing split {split!r}"))
            continue
        try:
            ids = layout.split_ids(split)
        except DataError as e:
            report.problems.append(Problem(e.path or path, e.problem))
            continue
        if not ids:
            report.problems.append(Problem(path, f"split {split!r} is empty (lists no ids)"))
        split_ids[split] = ids
        report.split_counts[split] = len(ids)
    return split_ids


def _overlap_problems(layout: Layout, split_ids: dict[str, list[str]]) -> list[Problem]:
    problems = []
    for a, b in combinations(split_ids, 2):
        shared = sorted(set(split_ids[a]) & set(split_ids[b]))
        if shared:
            problems.append(
                Problem(
                    layout.split_file(b),
                    f"{len(shared)} id(s) also in split {a!r} "
                    f"({layout.split_file(a).name}): {_quote(shared)}",
                )
            )
    return problems


def _folder_problems(checker: _Checker) -> list[Problem]:
    kinds = []
    if checker.expect_rgb_label:
        kinds += ["rgb", "label"]
    if checker.expect_depth or checker.released:
        kinds.append("depth")
    problems = []
    for kind in kinds:
        folder = checker.root / kind
        if not folder.is_dir():
            problems.append(Problem(folder, f"missing {kind} folder"))
        elif not any(folder.iterdir()):
            problems.append(Problem(folder, f"empty folder: {kind}/ holds no files"))
    return problems


def _orphan_problems(checker: _Checker, listed: set[str]) -> list[Problem]:
    """Files no split lists (warnings) and leftovers of interrupted atomic writes."""
    problems = []
    for kind in ("rgb", "label", "depth"):
        folder = checker.root / kind
        if not folder.is_dir():
            continue
        orphans = []
        for f in sorted(folder.iterdir()):
            if f.name.startswith(".") and ".tmp" in f.name:
                problems.append(Problem(f, "leftover temporary file of an interrupted write", WARNING))
            elif f.is_file() and f.stem not in listed:
                orphans.append(f.name)
        if orphans:
            problems.append(
                Problem(folder, f"{len(orphans)} file(s) in no split: {_quote(orphans)}", WARNING)
            )
    return problems


def _count_problems(
    layout: Layout, report: CheckReport, split_ids: dict[str, list[str]], full: bool
) -> list[Problem]:
    """dataset.json ``counts`` must match the split files (keys train/val/test, and total)."""
    if layout.kind != "faceparse":
        return []
    counts = layout.info.counts
    json_path = layout.root / DATASET_JSON
    problems = []
    for split, ids in split_ids.items():
        if split in counts and counts[split] != len(ids):
            problems.append(
                Problem(
                    json_path,
                    f"counts.{split} is {counts[split]} but {layout.split_file(split).name} lists {len(ids)}",
                )
            )
    if full and "total" in counts and len(split_ids) == len(SPLITS) and counts["total"] != report.total:
        problems.append(
            Problem(json_path, f"counts.total is {counts['total']} but the splits list {report.total} ids")
        )
    return problems


# --- packed datasets --------------------------------------------------------------------------------------


def _check_packed(
    layout: Layout, report: CheckReport, splits: Sequence[str] | None, on_progress: OnProgress | None
) -> None:
    """Fill ``report`` for a packed dataset: manifest, chunk files, label ids, split files, counts."""
    root = layout.root
    try:
        manifest = read_manifest(root)
    except DataError as e:
        report.problems.append(Problem(e.path or root / PACKED_JSON, e.problem))
        return
    names = list(splits) if splits else list(manifest.splits)
    for split in names:
        if split not in manifest.splits:
            message = f"split {split!r} was not packed; packed: {', '.join(manifest.splits)}"
            report.problems.append(Problem(root / PACKED_JSON, message))
    split_ids = _read_splits(layout, [s for s in names if s in manifest.splits], report)
    report.problems += _overlap_problems(layout, split_ids)
    report.total = len({sid for ids in split_ids.values() for sid in ids})
    total = sum(manifest.splits[s].count for s in split_ids)
    done = 0
    if on_progress is not None:
        on_progress(0, total, "")
    for split, ids in split_ids.items():
        info = manifest.splits[split]
        if ids != info.ids:
            report.problems.append(
                Problem(
                    layout.split_file(split),
                    f"lists {len(ids)} ids but {PACKED_JSON} packs {info.count} for split {split!r}"
                    + ("" if len(ids) != info.count else " (other ids, or another order)")
                    + "; restore the split file or re-pack",
                )
            )
        chunks = info.chunks(manifest.chunk_size)
        if not info.complete(manifest.chunk_size):
            todo = [c for c in range(chunks) if c not in info.finished]
            report.problems.append(
                Problem(
                    root / PACKED_JSON,
                    f"unfinished pack: split {split!r} has {len(info.finished)} of {chunks} chunks "
                    f"(chunk {todo[0]} onwards missing); {manifest.resume_hint(root)}",
                )
            )
        pixels, images = np.zeros(256, np.int64), np.zeros(256, np.int64)
        depth = 0
        for chunk in info.finished:
            rows = info.rows(chunk, manifest.chunk_size)
            arrays = _packed_chunk(root, manifest, split, chunk, report)
            if arrays is not None:
                depth += int(arrays["has_depth"].sum())
                label_file = chunk_path(root, split, "label", chunk)
                for row, index in enumerate(rows):
                    histogram = np.bincount(arrays["label"][row].ravel(), minlength=256).astype(np.int64)
                    pixels += histogram
                    images += histogram > 0
                    problem = label_range_problem(histogram, layout.scheme)
                    if problem is not None:
                        report.problems.append(Problem(label_file, f"sample {info.ids[index]!r}: {problem}"))
                report.checked += len(rows)
            done += len(rows)
            if on_progress is not None:
                on_progress(done, total, "")
        report.pixel_counts[split], report.image_counts[split] = pixels, images
        report.depth_counts[split] = depth
        for leftover in sorted((root / split).glob(".*.tmp*")):
            report.problems.append(
                Problem(leftover, "leftover temporary file of an interrupted pack", WARNING)
            )
    report.problems += _count_problems(layout, report, split_ids, full=splits is None)


def _packed_chunk(
    root: Path, manifest: PackedManifest, split: str, chunk: int, report: CheckReport
) -> dict[str, np.ndarray] | None:
    """The four memory-mapped arrays of one chunk, or None with each bad file in ``report``."""
    info = manifest.splits[split]
    width, height = info.size
    rows = len(info.rows(chunk, manifest.chunk_size))
    arrays, ok = {}, True
    for name in ARRAYS:
        path = chunk_path(root, split, name, chunk)
        try:
            arrays[name] = open_chunk(path, name, rows, height, width)
        except DataError as e:
            report.problems.append(
                Problem(path, f"{e.problem} (chunk {chunk} of split {split!r}); {manifest.resume_hint(root)}")
            )
            ok = False
    return arrays if ok else None
