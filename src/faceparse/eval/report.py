"""Paper-style result tables (paper §4.3-4.4, Tables 2-7 and Figure 7) from typed scores.

Every function takes the :class:`~faceparse.eval.results.ParsingScores` /
:class:`~faceparse.eval.results.TranslationScores` that :func:`faceparse.eval.metrics.parsing_scores` /
:class:`~faceparse.eval.metrics.DepthL1` return (or their :func:`aggregate_seeds` summary, a
:class:`~faceparse.eval.results.SeedAggregate` shown as ``mean ± std``) and returns a
:class:`ReportTable`, which renders as markdown (``docs/results.md``) or as a rich table (terminal).
Cells are read at key paths with :func:`~faceparse.eval.results.metric_at`.

Layouts:

* :func:`parsing_table`     Tables 2, 3, 5: rows = methods, columns = classes in ``scheme.report_order``
                            then Mean. Helen (Table 6): Skin, Nose, U-Lip, I-Mouth, L-Lip, Eyes, Brows,
                            Mouth, Overall.
* :func:`translation_table` Table 4: rows = Pix2Pix / Pix2Pix + our method, column L1 distance.
* :func:`ablation_table`    Table 7: rows = baseline, + L_ML, + L_E2E, + both; column mean F1.
* :func:`fraction_table`    Figure 7's numbers: rows = depth-label fraction, columns = methods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceparse.eval.results import KeyPath, ParsingScores, Scores, SeedAggregate, TranslationScores, metric_at
from faceparse.labels import LabelScheme, get_scheme

Row = Scores | SeedAggregate | None  # one table row: a network's scores, their seeds' aggregate, or N/A

# --- seeds ---------------------------------------------------------------------------------------------


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def _aggregate(values: list[Any], where: str) -> tuple[Any, Any]:
    first = values[0]
    if isinstance(first, Mapping):
        keys = list(first)
        for v in values[1:]:
            if not isinstance(v, Mapping) or set(v) != set(keys):
                raise ValueError(f"seed results disagree on the keys of {where or 'the top level'}")
        means, stds = {}, {}
        for k in keys:
            m, s = _aggregate([v[k] for v in values], f"{where}.{k}" if where else str(k))
            if m is not _DROP:
                means[k], stds[k] = m, s
        return means, stds
    if all(_is_number(v) or v is None for v in values) and any(_is_number(v) for v in values):
        arr = np.array([math.nan if v is None else float(v) for v in values])
        finite = arr[np.isfinite(arr)]  # NaN = undefined F1 in that seed: left out
        if finite.size == 0:
            return math.nan, math.nan
        std = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        return float(finite.mean()), std
    if all(v == first for v in values):
        return first, None
    return _DROP, _DROP


_DROP = object()


def aggregate_seeds(results: Sequence[Scores | Mapping[str, Any]]) -> SeedAggregate:
    """Mean and sample standard deviation (ddof=1) of results from several seeds.

    ``results``: scores (averaged in their JSON form, where undefined values are null) or JSON-form
    dicts, e.g. ``{"rgb": ..., "depth": ..., "translation": ...}`` of several networks. Returns a
    :class:`SeedAggregate` whose ``mean`` and ``std`` have the results' structure. Numbers are averaged
    leaf by leaf (NaN/None leaves, i.e. undefined F1, are left out; the std of a single value is NaN);
    other leaves (e.g. ``"scheme"``) are kept when all seeds agree and dropped otherwise. The table
    functions of this module accept the result wherever they accept one network's scores.
    """
    if not results:
        raise ValueError("aggregate_seeds needs at least one result")
    trees = [r.to_json() if isinstance(r, ParsingScores | TranslationScores) else r for r in results]
    mean, std = _aggregate(trees, "")
    return SeedAggregate(mean=mean, std=std, n=len(results))


def format_value(mean: float | None, std: float | None = None, digits: int = 1) -> str:
    """``"96.3"``, ``"96.3 ± 0.2"`` or ``"N/A"`` (missing or undefined)."""
    if mean is None or not math.isfinite(mean):
        return "N/A"
    text = f"{mean:.{digits}f}"
    if std is not None and math.isfinite(std):
        text += f" ± {std:.{digits}f}"
    return text


# --- table object ----------------------------------------------------------------------------------------


@dataclass
class ReportTable:
    """A rendered-agnostic table: headers, string cells, and which cells to emphasise."""

    headers: list[str]
    rows: list[list[str]]
    title: str = ""
    caption: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, column) cells in bold

    def markdown(self) -> str:
        def cell(r: int, c: int, text: str) -> str:
            return f"**{text}**" if (r, c) in self.bold else text

        lines = []
        if self.title:
            lines += [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(self.headers) - 1)) + "|")
        for r, row in enumerate(self.rows):
            lines.append("| " + " | ".join(cell(r, c, t) for c, t in enumerate(row)) + " |")
        if self.caption:
            lines += ["", self.caption]
        return "\n".join(lines) + "\n"

    def rich(self):  # -> rich.table.Table (rich imported lazily)
        from rich.table import Table

        table = Table(title=self.title or None, caption=self.caption or None)
        for i, h in enumerate(self.headers):
            table.add_column(h, justify="left" if i == 0 else "right")
        for r, row in enumerate(self.rows):
            table.add_row(*(f"[bold]{t}[/bold]" if (r, c) in self.bold else t for c, t in enumerate(row)))
        return table


def transpose(table: ReportTable) -> ReportTable:
    """Columns become rows (one row per class, one column per method): fits a narrow terminal."""
    rows = [[h, *(row[c] for row in table.rows)] for c, h in enumerate(table.headers) if c > 0]
    bold = {(c - 1, r + 1) for r, c in table.bold}
    headers = ["", *(row[0] for row in table.rows)]
    return ReportTable(headers=headers, rows=rows, title=table.title, caption=table.caption, bold=bold)


def render_markdown(tables: Sequence[ReportTable]) -> str:
    """Several tables as one markdown document, separated by blank lines."""
    return "\n".join(t.markdown() for t in tables)


def _bold_best(rows: list[list[float | None]], column: int) -> set[tuple[int, int]]:
    values = [
        (r, value) for r, v in enumerate(rows) if (value := v[column]) is not None and math.isfinite(value)
    ]
    if len(values) < 2:
        return set()
    best = max(v for _, v in values)
    return {(r, column + 1) for r, v in values if v == best}  # +1: the method-name column


def _build(
    rows: Mapping[str, Row],
    columns: Sequence[tuple[str, KeyPath]],
    *,
    first_header: str,
    title: str,
    caption: str,
    digits: int,
    bold_last: bool,
) -> ReportTable:
    cells, means = [], []
    for method, entry in rows.items():
        looked = [metric_at(entry, path) for _, path in columns]
        cells.append([method] + [format_value(m, s, digits) for m, s in looked])
        means.append([m for m, _ in looked])
    bold = _bold_best(means, len(columns) - 1) if bold_last and columns else set()
    headers = [first_header] + [h for h, _ in columns]
    return ReportTable(headers=headers, rows=cells, title=title, caption=caption, bold=bold)


# --- parsing tables (Tables 2, 3, 5, 6) -----------------------------------------------------------------

# Table 6 (Helen): five single classes, three merged groups, then the merged "overall" F1.
_HELEN_CLASS_COLUMNS = ("skin", "nose", "upper_lip", "inner_mouth", "lower_lip")
_HELEN_GROUP_COLUMNS = (("Eyes", "eyes"), ("Brows", "brows"), ("Mouth", "mouth"))


def parsing_columns(scheme: str | LabelScheme, *, full: bool = False) -> list[tuple[str, KeyPath]]:
    """(heading, key path) columns of a parsing table for ``scheme``.

    CelebAMask-HQ and LaPa: ``scheme.report_order`` classes then Mean (Tables 2, 3, 5). Helen: the
    paper's Table 6 columns ending in Overall; ``full=True`` shows every class in ``report_order``, the
    groups, Mean and Overall instead (Helen-D has no hair labels, so the paper leaves hair out).
    """
    scheme = get_scheme(scheme)
    if scheme.name.startswith("helen"):
        names = scheme.report_order if full else _HELEN_CLASS_COLUMNS
        cols: list[tuple[str, KeyPath]] = [(scheme.pretty(c), ("per_class", c)) for c in names]
        cols += [(h, ("groups", g)) for h, g in _HELEN_GROUP_COLUMNS]
        if full:
            cols.append(("Mean", ("mean_f1",)))
        return cols + [("Overall", ("overall_f1",))]
    return [(scheme.pretty(c), ("per_class", c)) for c in scheme.report_order] + [("Mean", ("mean_f1",))]


def method_name(arch: str, modality: str, joint: bool = False) -> str:
    """Row label in the paper's style: ``BiSeNet_RGB``, ``EAGRNet_Depth + our method``."""
    name = f"{arch}_{modality}"
    return f"{name} + our method" if joint else name


def parsing_table(
    rows: Mapping[str, Row],
    scheme: str | LabelScheme,
    *,
    title: str = "",
    caption: str = "",
    full: bool = False,
    digits: int = 1,
    bold_last: bool = True,
) -> ReportTable:
    """Tables 2/3/5/6: one row per method (``{"BiSeNet_RGB": ParsingScores, ...}``), F1 in percent.

    The best value of the last column (Mean, or Overall for Helen) is bold, as in the paper.
    """
    return _build(
        rows,
        parsing_columns(scheme, full=full),
        first_header="Method",
        title=title,
        caption=caption,
        digits=digits,
        bold_last=bold_last,
    )


# --- translation (Table 4) -------------------------------------------------------------------------------


def translation_table(
    rows: Mapping[str, Row], *, title: str = "", caption: str = "", digits: int = 3
) -> ReportTable:
    """Table 4: ``{"Pix2Pix": DepthL1.compute(), "Pix2Pix + our method": ...}`` → L1 on the nearness scale.

    A foreground-only column is added when any row has an ``l1_fg`` (an aggregate of seeds that all lacked
    one has none). Lower is better: the smallest L1 is bold.
    """
    columns: list[tuple[str, KeyPath]] = [("L1 distance", ("l1",))]
    if any(metric_at(e, ("l1_fg",))[0] is not None for e in rows.values()):
        columns.append(("L1 (face/head pixels)", ("l1_fg",)))
    table = _build(
        rows, columns, first_header="Method", title=title, caption=caption, digits=digits, bold_last=False
    )
    negated = [[None if m is None else -m for m, _ in (metric_at(e, ("l1",)),)] for e in rows.values()]
    table.bold = _bold_best(negated, 0)
    return table


# --- loss ablation (Table 7) ------------------------------------------------------------------------------

ABLATION_VARIANTS: tuple[tuple[str, bool, bool], ...] = (
    ("", False, False),
    (" + L_ML", True, False),
    (" + L_E2E", False, True),
    (" + L_ML + L_E2E", True, True),
)
"""Table 7's rows: (label suffix, L_ML on, L_E2E on); a variant is Eq. 4 with λ1 or λ2 set to 0."""


def ablation_row_names(base: str) -> list[str]:
    """Table 7's labels: ``base``, ``base + L_ML``, ``base + L_E2E``, ``base + L_ML + L_E2E``."""
    return [base + suffix for suffix, _, _ in ABLATION_VARIANTS]


def ablation_table(
    rows: Mapping[str, Row],
    *,
    metric: KeyPath = ("mean_f1",),
    heading: str = "Mean F1-score",
    title: str = "",
    caption: str = "",
    digits: int = 1,
) -> ReportTable:
    """Table 7: one row per loss variant, one column (mean F1); ``None`` rows read "N/A" (e.g. RGB + L_E2E,
    which cannot change the RGB parser). Pass ``metric=("overall_f1",)`` for Helen."""
    return _build(
        rows,
        [(heading, metric)],
        first_header="Method",
        title=title,
        caption=caption,
        digits=digits,
        bold_last=True,
    )


# --- depth-label fraction (Figure 7) ------------------------------------------------------------------------


def fraction_curves(
    runs: Mapping[str, Mapping[float, Sequence[Scores | Mapping[str, Any]]]],
    *,
    metric: KeyPath = ("mean_f1",),
) -> dict[str, dict[str, list[float]]]:
    """Figure 7's data: ``{method: {fraction: [scores per seed]}}`` → per method, sorted by fraction,
    ``{"fraction": [...], "mean": [...], "std": [...], "n": [...]}`` (std NaN with one seed)."""
    curves: dict[str, dict[str, list[float]]] = {}
    for method, by_fraction in runs.items():
        curve: dict[str, list[float]] = {"fraction": [], "mean": [], "std": [], "n": []}
        for fraction in sorted(by_fraction):
            seeds = list(by_fraction[fraction])
            if not seeds:
                raise ValueError(f"{method}: no results for depth fraction {fraction}")
            agg = aggregate_seeds(seeds)
            mean, std = metric_at(agg, metric)
            curve["fraction"].append(float(fraction))
            curve["mean"].append(math.nan if mean is None else mean)
            curve["std"].append(math.nan if std is None else std)
            curve["n"].append(len(seeds))
        curves[method] = curve
    return curves


def fraction_label(fraction: float) -> str:
    """A depth-label fraction as the paper writes it: 0.01 → "1%", 1.0 → "100%"."""
    return f"{fraction * 100:g}%"


def fraction_table(
    curves: Mapping[str, Mapping[str, list[float]]], *, title: str = "", caption: str = "", digits: int = 1
) -> ReportTable:
    """Figure 7 as a table: rows = depth-label fraction (1%, 10%, 100%), columns = methods (mean ± std),
    then the number of seeds behind the row (a range where methods differ): fractions run on fewer seeds
    than the main cell must not read as if they had as many."""
    seeds = seeds_per_fraction(curves)
    rows = []
    for fraction in sorted(seeds):
        row = [fraction_label(fraction)]
        for curve in curves.values():
            if fraction in curve["fraction"]:
                i = curve["fraction"].index(fraction)
                row.append(format_value(curve["mean"][i], curve["std"][i], digits))
            else:
                row.append("N/A")
        row.append(seed_count_label(seeds[fraction]))
        rows.append(row)
    return ReportTable(headers=["Depth labels", *curves, "Seeds"], rows=rows, title=title, caption=caption)


def seeds_per_fraction(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[float, set[int]]:
    """Each fraction of :func:`fraction_curves`' output → the seed counts of the methods measured at it."""
    seeds: dict[float, set[int]] = {}
    for curve in curves.values():
        for fraction, n in zip(curve["fraction"], curve["n"], strict=True):
            seeds.setdefault(float(fraction), set()).add(int(n))
    return seeds


def seed_count_label(counts: set[int]) -> str:
    """``{3}`` → ``"3"``; ``{1, 3}`` → ``"1–3"``."""
    return str(min(counts)) if len(counts) == 1 else f"{min(counts)}–{max(counts)}"
