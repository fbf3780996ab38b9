"""`faceparse demo` end to end (tiny settings) and the seeds study's bookkeeping and aggregation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceparse.eval.results import Evaluation, GroupScores, ParsingScores, SeedAggregate, TranslationScores
from faceparse.runs.precision import auto_precision
from faceparse.workflows.demo import run_demo
from faceparse.workflows.study import (
    LR_CLASSES,
    GateNotMet,
    Study,
    aggregate_study,
    class_delta_table,
    clear_of_zero,
    clear_of_zero_cell,
    flip_diagnostic,
    flip_table,
    fraction_runs,
    gate_tables,
    light_delta_table,
    light_rows,
    light_table,
    merge_studies,
    paired_class_deltas,
    paired_deltas,
    paired_light_deltas,
    run_study,
    study_tables,
    write_study_report,
)

TINY = ["parsers.iterations=2", "translator.iterations=2", "joint.iterations=2", "run.ckpt_every=1"]


def test_demo_end_to_end_writes_the_report_and_resumes(tmp_path, capsys):
    report, tables = run_demo(tmp_path, workers=1, quick=True, overrides=TINY, samples=12)
    assert "━" not in capsys.readouterr().err  # library code draws no bar unless given a progress factory
    saved = json.loads((tmp_path / "report.json").read_text())
    for task in ("rgb", "depth"):
        for which in ("baseline", "joint"):
            assert 0.0 <= saved[task][which]["mean_f1"] <= 100.0
            assert "skin" in saved[task][which]["per_class"]
    for which in ("baseline", "joint"):
        assert 0.0 <= saved["translation"][which]["l1"] <= 1.0
    assert saved["checkpoints"]["joint"]["parser_rgb"].endswith("iter-0000002")
    assert "pretrain-rgb" in saved["checkpoints"]["baseline"]["parser_rgb"]
    assert saved["data"]["test_images"] == 1 and saved["data"]["size"] == 32
    assert (tmp_path / "qualitative.png").stat().st_size > 1000
    md = (tmp_path / "report.md").read_text()
    assert "BiSeNet_RGB + our method" in md
    # the report describes the preset it ran (quick: whole 32² images, no windows), from the config
    assert "32² heads, Adam (lr 0.001) for the parsers; iterations: RGB parser 2, depth parser 8" in md
    assert saved["data"]["crop"] is None
    assert [t.rows[0][0] for t in tables] == ["BiSeNet_RGB", "BiSeNet_Depth", "Pix2Pix"]

    # re-running resumes: every stage is already complete, the numbers are identical
    again, _ = run_demo(tmp_path, workers=1, quick=True, overrides=TINY, samples=12)
    assert again["rgb"] == report["rgb"] and again["translation"] == report["translation"]


def parsing(per_class: dict[str, float], mean_f1: float) -> ParsingScores:
    return ParsingScores("celebamask13", 1000, per_class, mean_f1)


def evaluation(
    rgb: ParsingScores | None = None,
    depth: ParsingScores | None = None,
    translation: TranslationScores | None = None,
    by_group: dict[str, GroupScores] | None = None,
) -> Evaluation:
    """An evaluation's result with made-up metadata (what a study reads back from eval-test.json)."""
    return Evaluation(
        checkpoint="ckpt",
        sources={"parser_rgb": "ckpt"},
        stages=["joint"],
        iteration=2,
        arch="bisenet",
        data="data",
        split="test",
        size=32,
        scheme="celebamask13",
        images=10,
        images_with_depth=5,
        rgb=rgb,
        depth=depth,
        translation=translation,
        by_group=by_group,
    )


def fake_scores(rgb: float, depth: float, l1: float) -> Evaluation:
    return evaluation(
        rgb=parsing({"skin": rgb, "nose": rgb - 10}, rgb - 5),
        depth=parsing({"skin": depth, "nose": depth}, depth),
        translation=TranslationScores(l1, 2 * l1),
    )


def as_json(tree: dict | Evaluation) -> dict:
    """A study's (nested) evaluations in their JSON form (NaN → null: comparable with ==)."""
    return tree.to_json() if isinstance(tree, Evaluation) else {k: as_json(v) for k, v in tree.items()}


def fake_per_seed() -> dict:
    per_seed = {}
    for seed, shift in ((0, 0.0), (1, 1.0), (2, -1.0)):
        main = {
            "baseline": fake_scores(60 + shift, 50 + shift, 0.10),
            "control": fake_scores(62 + shift, 51 + shift, 0.09),
            "no-e2e": fake_scores(63 + shift, 52 + shift, 0.09),
            "no-ml": fake_scores(62 + shift, 52 + shift, 0.08),
            "joint": fake_scores(64 + shift, 53 + 2 * shift, 0.08),
        }
        low = {"baseline": fake_scores(60 + shift, 40, 0.2), "joint": fake_scores(61 + shift, 41, 0.19)}
        per_seed[seed] = {"10%": main, "1%": low}
    return per_seed


def test_paired_deltas_are_per_seed_differences():
    deltas = paired_deltas(fake_per_seed(), "10%", [("joint", "baseline"), ("joint", "control")])
    rgb = deltas["joint − baseline / rgb"]
    assert rgb["values"] == pytest.approx([4.0, 4.0, 4.0]) and rgb["std"] == pytest.approx(0.0)
    depth = deltas["joint − baseline / depth"]
    assert depth["values"] == pytest.approx([3.0, 4.0, 2.0])
    assert depth["mean"] == pytest.approx(3.0) and depth["std"] == pytest.approx(1.0)
    assert depth["improved_in"] == "3/3"
    l1 = deltas["joint − control / translation"]
    assert l1["mean"] == pytest.approx(-0.01) and l1["improved_in"] == "3/3"  # lower L1 is better
    assert depth["clear_of_zero"] is True  # mean 3 > std 1


def test_a_difference_within_one_std_of_zero_asks_for_five_seeds():
    per_seed = fake_per_seed()
    for seed, shift, diff in ((0, 0.0, 1.0), (1, 1.0, -1.0), (2, -1.0, 1.5)):  # joint − baseline, RGB
        per_seed[seed]["10%"]["joint"] = fake_scores(60 + shift + diff, 50, 0.1)
    delta = paired_deltas(per_seed, "10%", [("joint", "baseline")])["joint − baseline / rgb"]
    assert delta["values"] == pytest.approx([1.0, -1.0, 1.5])
    assert delta["clear_of_zero"] is False and clear_of_zero_cell(delta) == "no: needs 5 seeds"
    one = paired_deltas({0: per_seed[0]}, "10%", [("joint", "baseline")])["joint − baseline / rgb"]
    assert one["clear_of_zero"] is None and clear_of_zero_cell(one) == "N/A (1 seed)"
    assert clear_of_zero(-3.0, 1.0) is True and clear_of_zero(0.5, 1.0) is False
    assert clear_of_zero_cell({"values": [0.1] * 5, "mean": 0.1, "std": 1.0}) == "no"
    assert clear_of_zero_cell({"values": [0.0] * 3, "mean": 0.0, "std": 0.0}) == "0 in every seed"


def test_per_class_paired_differences_joint_minus_control():
    deltas = paired_class_deltas(fake_per_seed(), "10%", "joint", "control")
    # rgb: joint 64+s vs control 62+s on every class → +2 each seed; depth: (53+2s) − (51+s) = 2+s
    assert deltas["rgb"]["skin"]["values"] == pytest.approx([2.0, 2.0, 2.0])
    assert deltas["rgb"]["nose"]["improved_in"] == "3/3"
    depth = deltas["depth"]["nose"]
    assert depth["values"] == pytest.approx([2.0, 3.0, 1.0]) and depth["std"] == pytest.approx(1.0)
    assert paired_class_deltas(fake_per_seed(), "1%", "joint", "control") == {"rgb": {}, "depth": {}}
    # an undefined F1 (NaN, null in eval-test.json) leaves that class out for that seed only
    per_seed = fake_per_seed()
    joint = per_seed[1]["10%"]["joint"]
    per_seed[1]["10%"]["joint"] = evaluation(
        parsing(joint.rgb.per_class | {"nose": math.nan}, 0.0), joint.depth
    )
    deltas = paired_class_deltas(per_seed, "10%", "joint", "control")
    assert (
        deltas["rgb"]["nose"]["values"] == pytest.approx([2.0, 2.0])
        and deltas["rgb"]["nose"]["improved_in"] == "2/2"
    )
    assert deltas["rgb"]["skin"]["values"] == pytest.approx([2.0, 2.0, 2.0])
    assert deltas["rgb"]["nose"]["seeds"] == [0, 2]  # seed 1's nose is undefined: the values keep their seeds
    text = class_delta_table(deltas, "t").markdown()
    assert (
        "| nose | +2.00 | 0.00 | 2/2 | 0: +2.0, 2: +2.0 | +2.00 | 1.00 | 3/3 | 0: +2.0, 1: +3.0, 2: +1.0 |"
        in text
    )


def test_paired_light_deltas_pair_each_seeds_runs_per_level():
    def run(dark: float, normal: float, depth_dark: float) -> Evaluation:
        by_group = {
            "dark": GroupScores(3, rgb=parsing({}, dark), depth=parsing({}, depth_dark)),
            "normal": GroupScores(5, rgb=parsing({}, normal)),
        }
        return evaluation(by_group=by_group)

    per_seed = {
        0: {"10%": {"control": run(40.0, 60.0, 50.0), "joint": run(37.0, 61.0, 49.0)}},
        1: {"10%": {"control": run(42.0, 62.0, 50.0), "joint": run(41.0, math.nan, 48.0)}},
        2: {"10%": {"joint": run(10.0, 10.0, 10.0)}},  # no control: no pair, left out
    }
    deltas = paired_light_deltas(per_seed, "10%", "joint", "control")
    dark = deltas["rgb"]["dark"]
    assert dark["values"] == pytest.approx([-3.0, -1.0]) and dark["seeds"] == [0, 1]
    assert dark["mean"] == pytest.approx(-2.0) and dark["std"] == pytest.approx(2**0.5)
    assert dark["improved_in"] == "0/2"
    # an undefined F1 on one side leaves that level out for that seed; a level no run has is absent
    assert deltas["rgb"]["normal"]["values"] == pytest.approx([1.0]) and "bright" not in deltas["rgb"]
    assert deltas["depth"]["dark"]["values"] == pytest.approx([-1.0, -2.0]) and set(deltas["depth"]) == {
        "dark"
    }
    text = light_delta_table(deltas, "t").markdown()
    assert "| RGB | -2.00 ± 1.41 (0/2) | +1.00 (1/1) | N/A | dark 0: -3.0, 1: -1.0; normal 0: +1.0 |" in text
    assert paired_light_deltas(per_seed, "1%") == {}


def _scores_lr(lr: float, other: float) -> Evaluation:
    per_class = {c: lr for c in LR_CLASSES} | {"skin": other, "nose": other}
    return evaluation(rgb=parsing(per_class, 0.0), depth=parsing(per_class, 0.0))


def test_flip_diagnostic_separates_left_right_classes_from_the_others():
    # correct-flip arm: nothing moves; no-swap arm: the paper's pattern in joint AND control vs baseline
    main = {s: {"10%": {v: _scores_lr(70, 80) for v in ("baseline", "control", "joint")}} for s in (0, 1)}
    noswap = {
        0: {"baseline": _scores_lr(50, 80), "control": _scores_lr(66, 80), "joint": _scores_lr(67, 80.5)},
        1: {"baseline": _scores_lr(52, 80), "control": _scores_lr(66, 80), "joint": _scores_lr(67, 80.5)},
    }
    rows = flip_diagnostic(main, noswap, "10%")
    by = {(r["arm"], r["pair"], r["task"]): r for r in rows}
    assert by[("correct flip", "joint − baseline", "rgb")]["left_right"]["mean"] == pytest.approx(0.0)
    jb = by[("no-swap pre-training", "joint − baseline", "rgb")]
    assert jb["left_right"]["mean"] == pytest.approx(16.0) and jb["left_right"]["std"] == pytest.approx(
        2**0.5
    )
    assert jb["others"]["mean"] == pytest.approx(0.5) and jb["n"] == 2
    jc = by[("no-swap pre-training", "joint − control", "depth")]
    assert jc["left_right"]["mean"] == pytest.approx(1.0) and jc["others"]["mean"] == pytest.approx(0.5)
    text = flip_table(rows).markdown()
    assert (
        "| no-swap pre-training | joint − baseline | RGB | +16.00 ± 1.41 | +0.50 ± 0.00 | +15.50 | 2 |"
        in text
    )


def test_study_variants_per_fraction_and_eq4_readings(tmp_path):
    study = Study(tmp_path, "study", options=["ml-kl", "depth-bn-separate", "ml-kl"])
    assert study.variants_for(0.1) == ("joint", "no-e2e", "no-ml", "control", "ml-kl", "depth-bn-separate")
    assert study.variants_for(0.01) == ("control", "joint")  # Figure 7: every fraction has its control
    assert Study(tmp_path, "study").variants_for(0.1) == (
        "joint",
        "no-e2e",
        "no-ml",
        "control",
    )
    with pytest.raises(ValueError, match="unknown study variant 'ml-l1'"):
        Study(tmp_path, "study", options=["ml-l1"])


def test_light_level_rows_average_seeds_per_level():
    def with_groups(dark: float, bright: float) -> Evaluation:
        by_group = {
            "dark": GroupScores(3, rgb=parsing({}, dark), depth=parsing({}, 60.0)),
            "bright": GroupScores(2, rgb=parsing({}, bright)),
            "normal": GroupScores(5, rgb=parsing({}, math.nan)),  # undefined F1: left out
        }
        return evaluation(by_group=by_group)

    per_seed = {
        0: {"10%": {"baseline": with_groups(20.0, 50.0), "joint": with_groups(30.0, 52.0)}},
        1: {"10%": {"baseline": with_groups(22.0, 54.0), "joint": with_groups(34.0, 52.0)}},
    }
    rows = light_rows(per_seed, "10%")
    joint = rows["RGB joint + L_ML + L_E2E (our method)"]
    assert joint["dark"]["mean"] == pytest.approx(32.0) and joint["dark"]["std"] == pytest.approx(8**0.5)
    assert "normal" not in joint and rows["depth pre-trained (baseline)"]["dark"]["mean"] == 60.0
    assert not any("control" in name for name in rows)  # no control runs, no control rows
    text = light_table(rows, "t").markdown()
    assert "| RGB pre-trained (baseline) | 21.0 ± 1.4 | N/A | 52.0 ± 2.8 |" in text


def _val(rgb_mean: float, brow: float, depth_mean: float) -> Evaluation:
    return evaluation(
        rgb=parsing({"skin": 90.0, "l_brow": brow}, rgb_mean),
        depth=parsing({"skin": 95.0, "l_brow": 30.0}, depth_mean),
    )


def test_competence_gate_stops_the_study_naming_what_failed(tmp_path):
    study = Study(tmp_path, "study")
    assert study.check_gate(0, "10%", _val(75.0, 55.0, 60.0))["passed"]
    with pytest.raises(GateNotMet) as info:
        study.check_gate(1, "10%", _val(53.8, 16.8, 60.0))
    message = str(info.value)
    assert "seed 1, 10% depth labels" in message and "val split" in message and "--no-gate" in message
    assert "RGB parser: mean 53.8 < 70, l_brow 16.8 < 50" in message and "depth parser" not in message
    # gate off: recorded, not raised; the verdicts are kept for study.md/json either way
    lenient = Study(tmp_path, "study", gate=False)
    verdict = lenient.check_gate(2, "10%", _val(53.8, 16.8, 40.0))
    assert not verdict["passed"] and verdict["depth"]["failures"] == ["mean 40.0 < 50"]
    assert lenient.gates[2]["10%"].val.rgb.mean_f1 == 53.8
    assert lenient.gates[2]["10%"].to_json()["gate"] == verdict
    assert set(study.gates) == {0, 1}


def test_competence_gate_enforces_only_the_rgb_half_away_from_the_main_fraction(tmp_path):
    study = Study(tmp_path, "study")
    weak_depth = _val(75.0, 55.0, 31.0)  # a depth parser trained on 1 % of the labels
    with pytest.raises(GateNotMet, match="depth parser: mean 31.0 < 50"):
        study.check_gate(0, "10%", weak_depth)  # the main fraction: the whole gate
    verdict = study.check_gate(0, "1%", weak_depth, depth=False)
    assert not verdict["passed"] and verdict["depth"]["enforced"] is False
    with pytest.raises(GateNotMet) as info:  # the RGB half still stops the study
        study.check_gate(0, "1%", _val(53.8, 16.8, 31.0), depth=False)
    assert "RGB parser: mean 53.8 < 70" in str(info.value) and "depth parser" not in str(info.value)
    text = "\n".join(t.markdown() for t in gate_tables(study.gates, "celebamask13"))
    assert "fails: mean 31.0 < 50 (recorded, not enforced: a Figure 7 fraction)" in text
    assert "| seed 0, 10% | depth | mean ≥ 50, every class ≥ 20 | fails: mean 31.0 < 50 |" in text


def test_aggregate_tables_and_fraction_curves():
    from faceparse.eval.report import fraction_curves

    per_seed = fake_per_seed()
    summary = aggregate_study(per_seed, "10%")
    joint = summary["cells"]["10%"]["joint"]
    assert isinstance(joint, SeedAggregate) and set(joint.mean) == {"rgb", "depth", "translation"}
    assert joint.n == 3 and joint.mean["rgb"]["per_class"]["skin"] == pytest.approx(64.0)
    assert joint.std["rgb"]["per_class"]["skin"] == pytest.approx(1.0)
    assert joint.mean["rgb"]["scheme"] == "celebamask13" and joint.mean["translation"]["l1"] == pytest.approx(
        0.08
    )
    assert "joint − baseline / rgb @ 1%" in summary["deltas"]
    runs = fraction_runs(per_seed)
    assert set(runs) == {
        f"{m} {w}" for m in ("RGB", "Depth") for w in ("baseline", "control", "+ our method")
    }
    summary["curves"] = fraction_curves(runs)
    assert summary["curves"]["Depth + our method"]["fraction"] == [0.01, 0.1]
    assert summary["curves"]["Depth + our method"]["mean"] == pytest.approx([41.0, 53.0])
    tables = study_tables(summary, "bisenet", "celebamask13", "10%")
    text = "\n".join(t.markdown() for t in tables)
    assert "joint, λ1 = λ2 = 0 (control)" in text and "64.0 ± 1.0" in text
    assert "Per-class paired differences, joint − control" in text
    assert (
        "| nose | +2.00 | 0.00 | 3/3 | 0: +2.0, 1: +2.0, 2: +2.0 "
        "| +2.00 | 1.00 | 3/3 | 0: +2.0, 1: +3.0, 2: +1.0 |" in text
    )
    assert math.isnan(summary["deltas"]["no-ml − control / rgb"]["std"]) is False
    # the literal L_ML's share on top of L_E2E, paired per seed
    assert summary["deltas"]["joint − no-ml / depth"]["values"] == pytest.approx([1.0, 2.0, 0.0])
    assert "no-ml = joint + L_E2E (λ1 = 0)" in text
    assert "| joint − control / translation | -1.0e-02 |" in text  # L1 deltas keep their digits


STUDY_META = {
    "preset": "study",
    "overrides": ["data.root=/data/synth", "run.eval_every=250"],
    "variants": [],
    "samples": 600,
    "data": "/data/synth",
    "size": 32,
    "iterations": {"parsers": 2, "translator": 2, "joint": 2},
    "main_fraction": 0.1,
}


def _write_study(out: Path, per_seed: dict, flip: dict | None = None, **meta) -> Path:
    """A study.json (and report) of made-up evaluations, as `faceparse study` writes them."""
    gated = Study(out, "study", gate=False)
    for seed in per_seed:
        gated.check_gate(seed, "10%", _val(75.0, 55.0, 60.0))
    write_study_report(out, {**STUDY_META, **meta}, per_seed, flip or {}, gated.gates, False, {})
    return out / "study.json"


def test_merging_one_study_reproduces_its_report(tmp_path):
    one = _write_study(tmp_path / "a", fake_per_seed(), {1: {"baseline": fake_scores(50, 40, 0.1)}})
    merged = merge_studies([one], tmp_path / "m")
    assert as_json(merged["per_seed"]) == as_json(fake_per_seed())
    before = (tmp_path / "a" / "study.md").read_text().splitlines()
    after = (tmp_path / "m" / "study.md").read_text().splitlines()
    assert after[4] == f"Merged (`faceparse study-merge`) from: {one}."
    assert after[:4] + after[6:] == before  # every table, byte for byte
    saved = json.loads((tmp_path / "m" / "study.json").read_text())
    assert saved["merged_from"] == [str(one)] and saved["main_fraction"] == 0.1
    assert saved["gate"]["cells"]["2"]["10%"]["gate"]["passed"] is True


def test_merging_studies_run_apart_pairs_their_arms(tmp_path):
    full = fake_per_seed()
    first = _write_study(tmp_path / "a", {s: full[s] for s in (0, 1)})
    # seed 2's cells on another machine, and seed 0's ml-kl arm from seed 0's same pre-training
    later = {
        2: full[2],
        0: {"10%": {"baseline": full[0]["10%"]["baseline"], "ml-kl": fake_scores(61, 49, 0.1)}},
    }
    flip = {0: {"baseline": fake_scores(50, 40, 0.1), "control": fake_scores(55, 45, 0.1)}}
    second = _write_study(tmp_path / "b", later, flip, variants=["ml-kl"], overrides=["data.root=/elsewhere"])
    merged = merge_studies([first, second], tmp_path / "m")
    assert merged["seeds"] == [0, 1, 2] and merged["variants"] == ["ml-kl"]
    deltas = merged["summary"]["deltas"]
    assert deltas["joint − control / rgb"]["values"] == pytest.approx([2.0, 2.0, 2.0])
    assert deltas["ml-kl − control / depth"]["values"] == pytest.approx([-2.0])  # seed 0 only
    assert merged["summary"]["cells"]["10%"]["ml-kl"].n == 1 and set(merged["flip_per_seed"]) == {0}
    text = (tmp_path / "m" / "study.md").read_text()
    assert "Readings of Eq. 4" in text and "Left/right-flip diagnostic" in text
    assert "seed 2, 10%" in text  # its gate record travelled too
    assert "precision" not in text.splitlines()[2] and merged["precision"] is None  # neither file recorded it


def test_merge_records_the_precision_only_when_every_file_does(tmp_path):
    full = fake_per_seed()
    fp32 = [_write_study(tmp_path / f"s{s}", {s: full[s]}, precision="32-true") for s in (0, 1)]
    merged = merge_studies(fp32, tmp_path / "m")
    assert merged["precision"] == "32-true"
    assert "test split; precision 32-true; iterations" in (tmp_path / "m" / "study.md").read_text()
    unrecorded = _write_study(tmp_path / "old", {2: full[2]})  # written before the precision was recorded
    assert merge_studies([*fp32, unrecorded], tmp_path / "m2")["precision"] is None


def test_merge_refuses_unpaired_arms_other_designs_and_bad_files(tmp_path):
    from faceparse.utils.io import DataError

    full = fake_per_seed()
    first = _write_study(tmp_path / "a", full)
    # seed 0 re-created from pre-training that is not bit-identical: its arms do not pair with the first's
    redone = {0: {"10%": {"baseline": fake_scores(60.5, 50, 0.1), "ml-kl": fake_scores(61, 49, 0.1)}}}
    with pytest.raises(DataError, match="seed 0, 10% depth labels: its pre-trained networks .* not paired"):
        merge_studies([first, _write_study(tmp_path / "b", redone)], tmp_path / "m")
    twice = {1: {"10%": {**full[1]["10%"], "control": fake_scores(70, 60, 0.1)}}}
    with pytest.raises(DataError, match="cell 1 10% control differs from the same run in"):
        merge_studies([first, _write_study(tmp_path / "c", twice)], tmp_path / "m")
    longer = _write_study(tmp_path / "d", full, iterations={"parsers": 3, "translator": 2, "joint": 2})
    with pytest.raises(DataError, match="a different study design .*: iterations"):
        merge_studies([first, longer], tmp_path / "m")
    other_lr = _write_study(tmp_path / "e", full, overrides=["joint.lr=0.5", "run.progress=false"])
    with pytest.raises(DataError, match=r"overrides \['joint.lr=0.5'\] vs \[\]"):
        merge_studies([first, other_lr], tmp_path / "m")
    bf16 = _write_study(tmp_path / "g", {2: full[2]}, precision="bf16-mixed")
    fp32 = _write_study(tmp_path / "h", {3: full[2]}, precision="32-true")
    mixed = r"g/study.json.*design from .*h/study.json: its runs trained in bf16-mixed, those in 32-true"
    with pytest.raises(DataError, match=mixed):
        merge_studies([first, fp32, bf16], tmp_path / "m")  # the unrecorded first file hides nothing
    (tmp_path / "bad.json").write_text('{"per_seed": {}}')
    with pytest.raises(DataError, match="not a study.json written by faceparse study .missing gate"):
        merge_studies([tmp_path / "bad.json"], tmp_path / "m")
    broken = json.loads(first.read_text())
    del broken["size"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match="malformed study.json .KeyError: 'size'"):
        merge_studies([tmp_path / "broken.json"], tmp_path / "m")
    flip_only = _write_study(tmp_path / "f", {0: full[0]})
    raw = json.loads(flip_only.read_text())
    raw["per_seed"], raw["flip_per_seed"] = {}, {"0": raw["per_seed"]["0"]["10%"]}
    flip_only.write_text(json.dumps(raw))  # a flip arm run alone: nothing of the main cell to report
    with pytest.raises(ValueError, match="no run of its main cell .10% depth labels"):
        merge_studies([flip_only], tmp_path / "m")
    assert not (tmp_path / "m").exists()  # nothing written by a refused merge


def test_study_merge_cli(tmp_path):
    from faceparse.cli import app

    full = fake_per_seed()
    first = _write_study(tmp_path / "a", {s: full[s] for s in (0, 1)})
    second = _write_study(tmp_path / "b", {2: full[2]})
    runner = CliRunner()
    result = runner.invoke(app, ["study-merge", str(first), str(second), "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m" / "study.json").read_text())["seeds"] == [0, 1, 2]
    refused = runner.invoke(app, ["study-merge", str(first), str(second), "-o", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "holds one of the inputs" in " ".join(refused.output.split())
    missing = runner.invoke(app, ["study-merge", str(tmp_path / "nope.json"), "-o", str(tmp_path / "n")])
    said = "".join(missing.output.split())  # rich wraps long paths anywhere
    assert missing.exit_code == 2 and "nope.json" in said and "filenotfound" in said


@pytest.mark.slow
def test_study_runs_resumes_and_aggregates(tmp_path):
    overrides = ["data.size=32", "data.workers=0", *TINY, "parsers.batch_size=2", "translator.batch_size=2"]
    overrides += ["joint.batch_size=4", "model.generator_ngf=4", "model.discriminator_ndf=4"]
    # the design from the preset's study section (runs.config.StudyConfig), as `faceparse study` reads it
    overrides += ["study.seeds=[0,1]", "study.samples=20", "study.fractions=[0.1,1.0]", "study.gate=false"]
    overrides += ["study.flip_diagnostic=true", "study.variants=[ml-gated]"]
    kwargs = {"workers": 1}
    result = run_study("study", None, tmp_path, overrides, **kwargs)
    assert result["seeds"] == [0, 1] and result["samples"] == 20 and result["variants"] == ["ml-gated"]
    assert (tmp_path / "seed-0" / "depth-10" / "eval-val.json").is_file()
    assert (tmp_path / "seed-1" / "depth-100" / "control" / "joint" / "eval-test.json").is_file()
    assert (
        "ml_direction: gated"
        in (tmp_path / "seed-0" / "depth-10" / "ml-gated" / "joint" / "config.yaml").read_text()
    )
    assert "ml-gated − control / rgb" in result["summary"]["deltas"]
    assert "ml-gated − no-ml / depth" in result["summary"]["deltas"]  # on top of L_E2E
    assert "joint − control / depth @ 100%" in result["summary"]["deltas"]
    flip_arm = tmp_path / "seed-1" / "flip-noswap"
    assert "flip_swap: false" in (flip_arm / "pretrain-rgb" / "config.yaml").read_text()
    assert "flip_swap: true" in (flip_arm / "depth-10" / "control" / "joint" / "config.yaml").read_text()
    assert set(result["flip_per_seed"][0]) == {"baseline", "control", "joint"}
    assert "Left/right-flip diagnostic" in (tmp_path / "study.md").read_text()
    assert "by light level" in (tmp_path / "study.md").read_text() and (tmp_path / "light.png").is_file()
    assert "Paired differences by light level, joint − control" in (tmp_path / "study.md").read_text()
    assert (tmp_path / "light-paired.png").is_file()
    by_group = result["per_seed"][0]["10%"]["joint"].by_group
    assert set(by_group) <= {"dark", "normal", "bright"} and sum(g.images for g in by_group.values()) == 2
    assert (tmp_path / "seed-1" / "depth-10" / "control" / "joint" / "eval-test.json").is_file()
    assert not (tmp_path / "seed-0" / "depth-100" / "pretrain-rgb").exists()  # F_R is shared across fractions
    saved = json.loads((tmp_path / "study.json").read_text())
    assert saved["per_seed"]["0"]["10%"]["joint"] == json.loads(
        (tmp_path / "seed-0" / "depth-10" / "joint" / "eval-test.json").read_text()
    )
    assert saved["summary"]["cells"]["10%"]["joint"]["n"] == 2
    assert saved["gate"]["enabled"] is False and not saved["gate"]["cells"]["0"]["10%"]["gate"]["passed"]
    assert set(saved["summary"]["class_deltas"]["rgb"]) >= {"skin", "l_eye"}
    text = (tmp_path / "study.md").read_text()
    assert "Competence gate: pre-trained parsers on the val split" in text and "fails: mean" in text
    assert "Per-class paired differences, joint − control" in text
    assert set(saved["per_seed"]["0"]) == {"10%", "100%"}
    assert saved["precision"] == auto_precision() and f"precision {auto_precision()};" in text  # this CPU's
    for name in ("study.md", "fraction.png", "ablation-rgb.png", "ablation-depth.png"):
        assert (tmp_path / name).stat().st_size > 100
    again = run_study(
        "study", (0, 1), tmp_path, overrides, flip=True, options=["ml-gated"], **kwargs
    )  # cached
    assert as_json(again["per_seed"]) == as_json(result["per_seed"])


@pytest.mark.slow
def test_study_cli_stops_at_the_gate(tmp_path):
    from faceparse.cli import app

    overrides = ["data.size=32", "data.workers=0", *TINY, "parsers.batch_size=2", "translator.batch_size=2"]
    overrides += ["model.generator_ngf=4", "model.discriminator_ndf=4"]
    args = [
        "study",
        *overrides,
        "--out",
        str(tmp_path),
        "--seeds",
        "0",
        "--samples",
        "20",
        "--fraction",
        "0.1",
    ]
    res = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert res.exit_code == 2, res.output
    helped = " ".join(CliRunner().invoke(app, ["study", "--help"]).output.split())
    for option in ("--no-gate", "--flip-diagnostic", "--variant", "--fraction", "--seeds", "ml-gated"):
        assert option in helped
    output = " ".join(res.output.split())  # rich wraps long lines
    assert "miss the competence gate" in output and "RGB parser: mean" in output
    assert not (tmp_path / "seed-0" / "depth-10" / "joint").exists()  # stopped before any joint run


@pytest.mark.slow
def test_demo_cli_quick(tmp_path):
    from faceparse.cli import app

    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--quick", "--workers", "1"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"rgb", "depth", "translation"} <= set(report)
    assert Path(tmp_path / "report.md").is_file()
