"""Paper-style figures (matplotlib, Agg canvas, no pyplot global state), written atomically as PNG.

* :func:`qualitative_figure`  Figures 4-6: rows = samples; columns = RGB, ground truth, baseline
                              parsing, joint parsing, ground-truth depth, generated depth.
* :func:`fraction_plot`       Figure 7: mean F1 against the fraction of depth labels (1/10/100 %),
                              baseline vs joint, error bars = std across seeds.
* :func:`ablation_plot`       Table 7 as bars (mean F1 per loss variant, std error bars).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from faceparse.eval.report import fraction_label, seed_count_label, seeds_per_fraction
from faceparse.eval.results import KeyPath, Scores, SeedAggregate, metric_at
from faceparse.labels import LabelScheme, get_scheme
from faceparse.utils.io import atomic_save

QUALITATIVE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rgb", "RGB"),
    ("label_gt", "Ground truth"),
    ("label_baseline", "Baseline"),
    ("label_joint", "+ our method"),
    ("depth_gt", "GT depth"),
    ("depth_fake", "Generated depth"),
)
"""(sample key, column heading) of :func:`qualitative_figure`; keys starting ``label_`` are id maps,
``depth_`` nearness maps in [0, 1] (faceparse.data.encoding), ``rgb`` (H, W, 3) uint8."""


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # attaches the Agg canvas; no GUI backend, no pyplot
    return fig


def _save(fig: Figure, path: str | os.PathLike, dpi: int) -> Path:
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return path


def _to_image(key: str, array: np.ndarray, scheme: LabelScheme) -> tuple[np.ndarray, dict[str, Any]]:
    """An array ready for ``imshow`` and its keyword arguments, by the kind of column."""
    array = np.asarray(array)
    if key.startswith("label"):
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{key} must be an (H, W) integer id map, got {array.shape} {array.dtype}")
        return scheme.colorize(array), {}
    if key.startswith("depth"):
        if array.ndim != 2:
            raise ValueError(f"{key} must be an (H, W) nearness map, got shape {array.shape}")
        return array.astype(np.float32), {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{key} must be an (H, W, 3) image, got shape {array.shape}")
    return array, {}


def qualitative_figure(
    path: str | os.PathLike,
    samples: Sequence[Mapping[str, np.ndarray | None]],
    scheme: str | LabelScheme,
    *,
    columns: Sequence[tuple[str, str]] = QUALITATIVE_COLUMNS,
    row_titles: Sequence[str] | None = None,
    cell_inches: float = 1.8,
    dpi: int = 100,
) -> Path:
    """Figures 4-6: one row per sample dict (keys of ``columns``); a missing or None entry is left blank."""
    if not samples:
        raise ValueError("qualitative_figure needs at least one sample")
    if row_titles is not None and len(row_titles) != len(samples):
        raise ValueError(f"{len(row_titles)} row titles for {len(samples)} samples")
    scheme = get_scheme(scheme)
    n_rows, n_cols = len(samples), len(columns)
    fig = _new_figure(cell_inches * n_cols, cell_inches * n_rows + 0.3)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, sample in enumerate(samples):
        for c, (key, heading) in enumerate(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(heading, fontsize=9)
            if c == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[r], fontsize=8)
            array = sample.get(key)
            if array is None:
                ax.set_frame_on(False)
                continue
            image, kwargs = _to_image(key, array, scheme)
            ax.imshow(image, interpolation="nearest", **kwargs)
    fig.subplots_adjust(
        left=0.03, right=0.99, bottom=0.01, top=1 - 0.3 / (cell_inches * n_rows + 0.3), wspace=0.03
    )
    return _save(fig, path, dpi)


def fraction_plot(
    path: str | os.PathLike,
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    title: str = "Mean F1 vs depth-label fraction",
    ylabel: str = "Mean F1 (%)",
    dpi: int = 120,
) -> Path:
    """Figure 7 from :func:`faceparse.eval.report.fraction_curves`: one line per method, std error bars."""
    if not curves:
        raise ValueError("fraction_plot needs at least one curve")
    fig = _new_figure(4.5, 3.4)
    ax = fig.add_subplot()
    for method, curve in curves.items():
        x = np.asarray(curve["fraction"], dtype=float) * 100.0  # percent of depth+label pairs
        mean = np.asarray(curve["mean"], dtype=float)
        std = np.nan_to_num(np.asarray(curve["std"], dtype=float), nan=0.0)  # one seed: no bar
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=method)
    seeds = seeds_per_fraction(curves)  # fraction → seed counts behind its points
    ax.set_xscale("log")
    ticks = sorted(seeds)
    ax.set_xticks([f * 100.0 for f in ticks])
    # the seeds under each tick when they differ between fractions (e.g. 10% on 3 seeds, 1% on 1)
    uneven = len({frozenset(n) for n in seeds.values()}) > 1
    labels = [fraction_label(f) + (f"\nn = {seed_count_label(seeds[f])}" if uneven else "") for f in ticks]
    ax.set_xticklabels(labels)
    ax.minorticks_off()
    ax.set_xlabel("annotated depth used for training")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi)


def ablation_plot(
    path: str | os.PathLike,
    rows: Mapping[str, Scores | SeedAggregate | None],
    *,
    metric: KeyPath = ("mean_f1",),
    title: str = "Loss ablation",
    ylabel: str = "Mean F1 (%)",
    dpi: int = 120,
) -> Path:
    """Table 7 as bars: one bar per variant (scores or an :func:`aggregate_seeds` result); None = "N/A"."""
    if not rows:
        raise ValueError("ablation_plot needs at least one row")
    names = list(rows)
    looked = [metric_at(rows[n], metric) for n in names]
    means = [m if m is not None and math.isfinite(m) else math.nan for m, _ in looked]
    stds = [s if s is not None and math.isfinite(s) else 0.0 for _, s in looked]
    fig = _new_figure(max(4.0, 1.3 * len(names)), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    heights = np.nan_to_num(np.asarray(means), nan=0.0)
    bars = ax.bar(x, heights, yerr=stds, capsize=4, color="tab:blue")
    finite = [m for m in means if not math.isnan(m)]
    if finite:  # zoom on the differences, as the paper's numbers differ by tenths
        spread = max(finite) - min(finite)
        ax.set_ylim(max(0.0, min(finite) - max(2.0, 2 * spread)), min(100.0, max(finite) + max(1.0, spread)))
    bottom = ax.get_ylim()[0]
    for bar, mean in zip(bars, means, strict=True):
        x_mid = bar.get_x() + bar.get_width() / 2
        label, y = ("N/A", bottom) if math.isnan(mean) else (f"{mean:.1f}", bar.get_height())
        ax.annotate(label, (x_mid, y), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


def light_plot(
    path: str | os.PathLike,
    rows: Mapping[str, Mapping[str, Mapping[str, float]]],
    *,
    title: str = "F1 by light level",
    difference: bool = False,
    dpi: int = 120,
) -> Path:
    """Grouped bars: one group per light level, one bar per row (``{name: {level: {"mean", "std"}}}``).
    ``difference``: the rows are paired F1 differences (points, either sign) rather than F1 in [0, 100]."""
    if not rows:
        raise ValueError("light_plot needs at least one row")
    levels = list(dict.fromkeys(level for levels in rows.values() for level in levels))
    fig = _new_figure(max(5.0, 1.2 * len(levels) * max(1, len(rows)) / 2), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / len(rows)
    cmap = _class_colours(len(rows))
    for k, (name, by_level) in enumerate(rows.items()):
        means = [by_level.get(level, {}).get("mean", math.nan) for level in levels]
        stds = [by_level.get(level, {}).get("std", math.nan) for level in levels]
        stds = [s if math.isfinite(s) else 0.0 for s in stds]
        x = np.arange(len(levels)) + (k - (len(rows) - 1) / 2) * width
        ax.bar(x, np.nan_to_num(means), width, yerr=stds, capsize=2, color=cmap[k], label=name)
    ax.set_xticks(np.arange(len(levels)))
    ax.set_xticklabels(levels)
    if difference:
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_ylabel("mean F1 difference (points)")
    else:
        ax.set_ylabel("mean F1 (%)")
        ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path, dpi)


def read_val_csv(path: str | os.PathLike) -> dict[str, list[float]]:
    """A stage's ``val.csv`` (``run.eval_every``) as columns of floats (empty cells are NaN)."""
    import csv
    import io

    from faceparse.utils.io import DataError, read_text

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no val.csv: train with run.eval_every=N to validate during training")
    rows = list(csv.DictReader(io.StringIO(read_text(path), newline="")))
    if not rows:
        raise DataError(path, "val.csv holds no rows yet")
    return {key: [float(r[key]) if r[key] not in ("", None) else math.nan for r in rows] for key in rows[0]}


def learning_curves_plot(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike,
    task: str,
    classes: Sequence[str],
    dpi: int = 110,
    x: str = "minutes",
) -> Path:
    """Per-class val F1 against training minutes (``x="minutes"``) or iterations (``x="iterations"``),
    one panel per run (``curves``: label → val.csv columns, see :func:`read_val_csv`); ``task`` is
    ``rgb`` or ``depth``; the mean is drawn in black."""
    if x not in ("minutes", "iterations"):
        raise ValueError(f"x must be 'minutes' or 'iterations', got {x!r}")
    fig = _new_figure(4.2 * len(curves) + 1.2, 3.6)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    cmap = _class_colours(len(classes))
    for ax, (label, columns) in zip(axes, curves.items(), strict=True):
        if x == "minutes":
            xs = np.asarray(columns["train_s"]) / 60.0
        else:
            xs = np.asarray(columns["iteration"])
        for i, name in enumerate(classes):
            key = f"{task}_{name}"
            if key in columns:
                ax.plot(xs, columns[key], color=cmap[i], lw=1.2, marker=".", label=name)
        if f"{task}_mean_f1" in columns:
            ax.plot(xs, columns[f"{task}_mean_f1"], color="black", lw=2.4, label="mean")
        ax.set_title(label, fontsize=9)
        if x == "minutes":
            ax.set_xlabel("training minutes (wall clock, validation excluded)")
        else:
            ax.set_xlabel("training iterations")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"val F1 (%), {task} parser")
    axes[-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path, dpi)


def _class_colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]
