"""Paper-style tables (Tables 2-7, Figure 7 data) and figures written as valid PNGs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from faceparse.eval.figures import ablation_plot, fraction_plot, qualitative_figure
from faceparse.eval.metrics import ConfusionMatrix, parsing_scores
from faceparse.eval.report import (
    ablation_row_names,
    ablation_table,
    aggregate_seeds,
    format_value,
    fraction_curves,
    fraction_label,
    fraction_table,
    method_name,
    parsing_table,
    render_markdown,
    seed_count_label,
    translation_table,
    transpose,
)
from faceparse.eval.results import ParsingScores, SeedAggregate, TranslationScores
from faceparse.labels import get_scheme

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _scores(scheme_name: str, accuracy: float, seed: int = 0) -> ParsingScores:
    scheme = get_scheme(scheme_name)
    rng = np.random.default_rng(seed)
    target = rng.integers(0, scheme.num_classes, size=(48, 48))
    pred = np.where(
        rng.random((48, 48)) < accuracy, target, rng.integers(0, scheme.num_classes, size=(48, 48))
    )
    cm = ConfusionMatrix(scheme.num_classes)
    cm.update(pred, target)
    return parsing_scores(cm, scheme)


def _mean_only(mean_f1: float) -> ParsingScores:
    return ParsingScores("celebamask13", 100, {}, mean_f1)


def _markdown_rows(md: str) -> list[list[str]]:
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]


def test_celebamask_table_has_paper_columns_and_rows() -> None:
    base, joint = _scores("celebamask13", 0.6), _scores("celebamask13", 0.9)
    rows = {method_name("BiSeNet", "RGB"): base, method_name("BiSeNet", "RGB", joint=True): joint}
    md = parsing_table(rows, "celebamask13", title="Table 2").markdown()
    header, rule, first, second = _markdown_rows(md)
    # Table 2's columns, in its order.
    assert header == ["Method", "Skin", "Nose", "L-Eye", "R-Eye", "L-Brow", "R-Brow", "L-Ear", "R-Ear",
                      "Mouth", "U-Lip", "L-Lip", "Hair", "Mean"]  # fmt: skip
    assert rule[0] == "---" and set(rule[1:]) == {"---:"}
    assert first[0] == "BiSeNet_RGB" and second[0] == "BiSeNet_RGB + our method"
    assert first[1] == f"{base.per_class['skin']:.1f}"
    assert second[-1] == f"**{joint.mean_f1:.1f}**"  # the better mean is bold, as in the paper
    assert not first[-1].startswith("**")
    assert md.startswith("**Table 2**")


def test_lapa_and_helen_layouts() -> None:
    lapa = get_scheme("lapa11")
    header = _markdown_rows(parsing_table({"a": _scores("lapa11", 0.8)}, lapa).markdown())[0]
    assert header == ["Method", *(lapa.pretty(c) for c in lapa.report_order), "Mean"]

    helen = _scores("helen11", 0.8)
    md = parsing_table({"EAGRNet_RGB": helen}, "helen11").markdown()
    header, _, row = _markdown_rows(md)
    # Table 6's columns: five classes, three merged groups, Overall.
    assert header == [
        "Method",
        "Skin",
        "Nose",
        "U-Lip",
        "I-Mouth",
        "L-Lip",
        "Eyes",
        "Brows",
        "Mouth",
        "Overall",
    ]
    assert row[header.index("Eyes")] == f"{helen.groups['eyes']:.1f}"
    assert helen.overall_f1 is not None and row[-1] == f"{helen.overall_f1:.1f}"
    full = _markdown_rows(parsing_table({"x": helen}, "helen11", full=True).markdown())[0]
    assert "Hair" in full and "Mean" in full and full[-1] == "Overall"


def test_missing_and_undefined_values_read_na() -> None:
    scores = _scores("celebamask13", 0.9)
    per_class = {name: f1 for name, f1 in scores.per_class.items() if name != "nose"} | {"hair": math.nan}
    scores = dataclasses.replace(scores, per_class=per_class)
    row = _markdown_rows(parsing_table({"m": scores, "none": None}, "celebamask13").markdown())
    assert row[2][2] == "N/A" and row[2][-2] == "N/A"
    assert row[3][1:] == ["N/A"] * 13


def test_aggregate_seeds_mean_std() -> None:
    seeds = [
        {"scheme": "lapa11", "mean_f1": 80.0, "per_class": {"skin": 90.0, "hair": math.nan}},
        {"scheme": "lapa11", "mean_f1": 82.0, "per_class": {"skin": 94.0, "hair": 70.0}},
    ]
    agg = aggregate_seeds(seeds)
    assert isinstance(agg, SeedAggregate)
    assert agg.n == 2 and agg.mean["scheme"] == "lapa11"
    assert agg.mean["mean_f1"] == pytest.approx(81.0)
    assert agg.std["mean_f1"] == pytest.approx(math.sqrt(2.0))  # sample std, ddof = 1
    assert agg.mean["per_class"]["skin"] == pytest.approx(92.0)
    assert agg.mean["per_class"]["hair"] == pytest.approx(70.0) and math.isnan(agg.std["per_class"]["hair"])
    assert format_value(agg.mean["mean_f1"], agg.std["mean_f1"]) == "81.0 ± 1.4"
    assert format_value(None) == "N/A" and format_value(70.0, math.nan) == "70.0"

    table = parsing_table({"seeds": agg}, "lapa11").markdown()
    assert "81.0 ± 1.4" in table and "92.0 ± 2.8" in table
    with pytest.raises(ValueError, match="per_class"):
        aggregate_seeds([{"per_class": {"skin": 1.0}}, {"per_class": {"hair": 1.0}}])

    # typed scores are averaged in their JSON form: the same aggregate as their dicts
    typed = [_scores("lapa11", 0.7, seed=1), _scores("lapa11", 0.9, seed=2)]
    assert aggregate_seeds(typed).to_json() == aggregate_seeds([s.to_json() for s in typed]).to_json()
    assert aggregate_seeds(typed).mean["mean_f1"] == pytest.approx((typed[0].mean_f1 + typed[1].mean_f1) / 2)


def test_translation_table_lower_l1_is_bold() -> None:
    rows = {
        "Pix2Pix": TranslationScores(l1=0.122, l1_fg=0.2),
        "Pix2Pix + our method": TranslationScores(l1=0.099, l1_fg=0.15),
    }
    header, _, first, second = _markdown_rows(translation_table(rows).markdown())
    assert header == ["Method", "L1 distance", "L1 (face/head pixels)"]
    assert first == ["Pix2Pix", "0.122", "0.200"]
    assert second == ["Pix2Pix + our method", "**0.099**", "0.150"]
    # an aggregate without foreground L1 (every seed's was undefined: null) drops the column
    only_l1 = _markdown_rows(
        translation_table({"Pix2Pix": aggregate_seeds([{"l1": 0.5, "l1_fg": None}])}).markdown()
    )
    assert only_l1[0] == ["Method", "L1 distance"] and only_l1[2] == ["Pix2Pix", "0.500"]


def test_ablation_table_rows_and_na() -> None:
    names = ablation_row_names("EAGRNet_RGB")
    assert names == ["EAGRNet_RGB", "EAGRNet_RGB + L_ML", "EAGRNet_RGB + L_E2E", "EAGRNet_RGB + L_ML + L_E2E"]
    values = [_mean_only(89.1), _mean_only(90.2), None, _mean_only(90.3)]
    rows = _markdown_rows(ablation_table(dict(zip(names, values, strict=True))).markdown())
    assert rows[0] == ["Method", "Mean F1-score"]
    assert [r[1] for r in rows[2:]] == ["89.1", "90.2", "N/A", "**90.3**"]


def test_fraction_curves_and_table() -> None:
    runs = {
        "BiSeNet_Depth": {1.0: [_mean_only(75.0)], 0.01: [_mean_only(60.0), _mean_only(62.0)]},
        "BiSeNet_Depth + our method": {
            0.01: [_mean_only(65.0), _mean_only(67.0)],
            1.0: [_mean_only(78.0)],
        },
    }
    curves = fraction_curves(runs)
    base = curves["BiSeNet_Depth"]
    assert base["fraction"] == [0.01, 1.0] and base["mean"] == [61.0, 75.0] and base["n"] == [2, 1]
    assert base["std"][0] == pytest.approx(math.sqrt(2.0)) and math.isnan(base["std"][1])
    rows = _markdown_rows(fraction_table(curves).markdown())
    assert rows[0] == ["Depth labels", "BiSeNet_Depth", "BiSeNet_Depth + our method", "Seeds"]
    assert rows[2] == ["1%", "61.0 ± 1.4", "66.0 ± 1.4", "2"]
    assert rows[3] == ["100%", "75.0", "78.0", "1"]
    # a fraction whose methods ran on different numbers of seeds says so
    runs["BiSeNet_Depth"][1.0].append(_mean_only(77.0))
    rows = _markdown_rows(fraction_table(fraction_curves(runs)).markdown())
    assert rows[3] == ["100%", "76.0 ± 1.4", "78.0", "1–2"]
    assert seed_count_label({3}) == "3" and seed_count_label({3, 1, 2}) == "1–3"
    assert [fraction_label(f) for f in (0.01, 0.1, 1.0, 0.005)] == ["1%", "10%", "100%", "0.5%"]


def test_rich_rendering_and_transpose() -> None:
    table = parsing_table(
        {"A": _scores("celebamask13", 0.7), "B": _scores("celebamask13", 0.9)}, "celebamask13"
    )
    console = Console(record=True, width=200)
    console.print(table.rich())
    text = console.export_text()
    assert "L-Brow" in text and "Mean" in text and "B" in text
    tall = transpose(table)
    assert tall.headers == ["", "A", "B"]
    assert [r[0] for r in tall.rows] == table.headers[1:]
    assert (len(tall.rows) - 1, 2) in tall.bold  # B's mean stays bold
    doc = render_markdown([table, tall])
    assert doc == table.markdown() + "\n" + tall.markdown()
    assert "| Mean |" in tall.markdown()


def _assert_png(path: Path, min_size: tuple[int, int]) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
    assert [
        p.name for p in path.parent.iterdir() if p.name.endswith(".tmp.png")
    ] == []  # atomic, no leftovers


def test_qualitative_figure_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(2):
        samples.append(
            {
                "rgb": rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8),
                "label_gt": rng.integers(0, 13, size=(32, 32)),
                "label_baseline": rng.integers(0, 13, size=(32, 32)),
                "label_joint": rng.integers(0, 13, size=(32, 32)),
                "depth_gt": rng.random((32, 32)).astype(np.float32),
                "depth_fake": None,  # e.g. no generator: the column stays blank
            }
        )
    path = qualitative_figure(tmp_path / "fig" / "qual.png", samples, "celebamask13", row_titles=["a", "b"])
    _assert_png(path, (500, 200))
    with pytest.raises(ValueError, match="label_gt"):
        qualitative_figure(
            tmp_path / "bad.png", [{"label_gt": np.zeros((4, 4, 3), np.uint8)}], "celebamask13"
        )
    assert not (tmp_path / "bad.png").exists()


def test_fraction_and_ablation_plots_png(tmp_path: Path) -> None:
    curves = fraction_curves(
        {
            "baseline": {
                f: [_mean_only(70 + 5 * i), _mean_only(71 + 5 * i)] for i, f in enumerate((0.01, 0.1, 1.0))
            },
            "joint": {f: [_mean_only(75 + 3 * i)] for i, f in enumerate((0.01, 0.1, 1.0))},
        }
    )
    _assert_png(fraction_plot(tmp_path / "fig7.png", curves), (300, 200))
    uneven = fraction_curves({"joint": {0.01: [_mean_only(70)], 0.1: [_mean_only(71), _mean_only(73)]}})
    _assert_png(fraction_plot(tmp_path / "fig7-uneven.png", uneven), (300, 200))  # ticks carry "n = …"
    rows = dict(
        zip(
            ablation_row_names("EAGRNet_Depth"),
            [_mean_only(v) for v in (80.5, 81.2, 80.8, 81.3)],
            strict=True,
        )
    )
    rows["EAGRNet_RGB + L_E2E"] = None
    _assert_png(ablation_plot(tmp_path / "table7.png", rows), (300, 200))
