"""``faceparse study``: baseline vs joint over several seeds, with the loss ablation, a same-length control
and the depth-label fractions (paper §4.3 Tables 2-4, §4.4 Table 7 and Figure 7).

For every seed (``data.seed`` = ``run.seed`` = seed: the depth subset, the initialisation and the data
order all change with it), on one shared dataset::

    OUT/seed-S/pretrain-rgb/                       F_R pre-training (does not depend on the depth fraction)
    OUT/seed-S/depth-P/pretrain-{depth,translator} F_D and G+D on the P% depth-annotated subset
    OUT/seed-S/depth-P/joint/                      joint training, Eq. 4 with every term (λ1 = λ2 = 1)
    OUT/seed-S/depth-10/{no-e2e,no-ml,control}/joint/   λ2 = 0 (+L_ML), λ1 = 0 (+L_E2E), λ1 = λ2 = 0

The control is joint training with the base losses only, for the same number of iterations at the same
learning rates: "joint − control" is what L_ML and L_E2E add, "control − baseline" what simply training
longer (at lr ÷ 10, with G's depths in F_D's batch) adds. Every run is evaluated on the test split
(cached as ``eval-test.json`` beside it); ``OUT/study.md``, ``OUT/study.json``, ``OUT/fraction.png``
(Figure 7) and ``OUT/ablation-*.png`` (Table 7) aggregate the seeds as mean ± sample std.

Competence gate (``gate=True``, the default; ``faceparse study --no-gate`` turns it off): after each
cell's pre-training, the pre-trained parsers are evaluated on the **val** split (cached as
``eval-val.json``) and must meet :data:`faceparse.eval.gate.COMPETENCE` (RGB ≥ 50 F1 on every class and
≥ 70 mean; depth ≥ 50 mean, no class below 20) before any joint run: mutual learning between parsers that
know only skin and hair tests nothing (SCIENCE.md §3.1). A miss stops the study with :class:`GateNotMet`,
naming the failing classes and their F1. The val scores and the verdicts go into ``study.json`` and
``study.md`` either way.

Left/right-flip diagnostic (``flip=True``, ``faceparse study --flip-diagnostic``; SCIENCE.md): the paper's
BiSeNet "+ our method" gains concentrate on the six left/right classes, and the authors' training code
flips images without swapping left/right labels (FACTS §5). For each seed, a second arm pre-trains all
three networks with ``data.flip_swap=false`` under ``OUT/seed-S/flip-noswap/`` (main fraction only), then
runs the control and the joint phase with the correct flip. The report gives, for both arms, the mean
change on the left/right classes and on the other classes (joint − baseline, control − baseline,
joint − control): the explanation predicts the paper's pattern in joint − baseline AND control − baseline
of the no-swap arm, and nothing left in joint − control. Its pre-trained parsers are gated by nothing
(they are meant to confuse left and right); their val verdicts are recorded.

Resumable: finished stages and evaluations are skipped, unfinished stages continue from their last
checkpoint.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from faceparse.eval.results import (
    PARSING_TASKS,
    Evaluation,
    ParsingScores,
    ParsingTask,
    SeedAggregate,
    jsonable,
)
from faceparse.runs.config import Config, load_config
from faceparse.runs.precision import resolved_precision
from faceparse.runs.stages import JOINT, PRETRAIN_DEPTH, PRETRAIN_RGB, PRETRAIN_TRANSLATOR, Stage
from faceparse.utils.progress import ProgressFactory, console

FRACTIONS = (0.01, 0.1, 1.0)  # Figure 7
MAIN_FRACTION = 0.1  # paper §4.1
# Each joint arm is a config overlay in configs/variants/ (ablations are configs, not branches); "joint"
# is the literal Eq. 4 with every term. Table 7's rows and the control:
VARIANTS = ("joint", "no-e2e", "no-ml", "control")
# the readings of Eq. 4 the paper leaves open (docs/method.md), each a joint run with every term, measured
# against the same control; opt-in with `faceparse study --variant NAME`
OPTION_VARIANTS = ("ml-probs", "ml-kl", "ml-gated", "ml-confident", "ml-warmup", "depth-bn-separate")


def variant_overrides(variant: str) -> list[str]:
    """The ``key=value`` overrides of a joint arm, read from its overlay ``configs/variants/<name>.yaml``."""
    from faceparse.runs.config import read_overlay

    if variant == "joint":
        return []
    return _dotlist(read_overlay(f"variants/{variant}"))


def _dotlist(tree: Mapping[str, Any], prefix: str = "") -> list[str]:
    items = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            items += _dotlist(value, f"{prefix}{key}.")
        else:  # JSON spells null, booleans and numbers the way OmegaConf's dotlist parses them back
            items.append(f"{prefix}{key}={value if isinstance(value, str) else json.dumps(value)}")
    return items


VARIANT_LABELS = {
    "baseline": "pre-trained (baseline)",
    "control": "joint, λ1 = λ2 = 0 (control)",
    "no-e2e": "joint + L_ML (λ2 = 0)",
    "no-ml": "joint + L_E2E (λ1 = 0)",
    "joint": "joint + L_ML + L_E2E (our method)",
    **{
        name: f"joint, {' '.join(o.removeprefix('joint.') for o in variant_overrides(name))}"
        for name in OPTION_VARIANTS
    },
}
STUDY_SAMPLES = 600
LR_CLASSES = ("l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear")  # the paper's left/right classes
FLIP_DIR = "flip-noswap"


Runs = Mapping[str, Evaluation]  # one cell of a seed: variant ("baseline", "joint", ...) → its evaluation
PerSeed = Mapping[int, Mapping[str, Runs]]  # seed → fraction label ("10%") → variant → evaluation
Task = Literal["rgb", "depth", "translation"]
TASKS: tuple[Task, ...] = ("rgb", "depth", "translation")
_PARSERS: tuple[tuple[ParsingTask, str], ...] = (("rgb", "RGB"), ("depth", "depth"))


class GateNotMet(RuntimeError):
    """The pre-trained parsers of a study cell miss the competence gate (message names what failed)."""


@dataclass(frozen=True)
class GateRecord:
    """One cell's competence check: its pre-trained parsers' val evaluation and the gate's verdict
    (:meth:`faceparse.eval.gate.Gate.check`, with ``depth.enforced``)."""

    val: Evaluation
    verdict: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """``{"val": Evaluation.to_json(), "gate": verdict}``, as in ``study.json``."""
        return {"val": self.val.to_json(), "gate": jsonable(self.verdict)}


def fraction_dir(fraction: float) -> str:
    return f"depth-{fraction * 100:g}"


@functools.cache
def _light_groups(data: str, split: str) -> dict[str, str] | None:
    """The split's light levels (read once per study; the dataset does not change), or None without them."""
    from faceparse.data.format import light_levels
    from faceparse.utils.io import DataError

    try:
        return light_levels(data, split)
    except DataError:
        return None


def _evaluate_cached(path: Path, checkpoints: Sequence[Path], data: str, split: str = "test") -> Evaluation:
    """Evaluate once on ``split``; reuse ``path`` if it was computed from the same checkpoint folders.
    Where the dataset records each sample's light level (synthetic data), the scores of each level are
    added under ``by_group`` (paper §1: RGB suffers in very dark and bright scenes, depth does not).
    A fresh evaluation is returned as it is read back from ``path`` (no examples), as on a resume."""
    from faceparse.eval.run import evaluate_checkpoint
    from faceparse.runs.checkpoint import find_checkpoint
    from faceparse.utils.io import atomic_write_json, read_json

    groups = _light_groups(data, split)
    sources = sorted(str(find_checkpoint(c)) for c in checkpoints)
    if path.is_file():
        cached = read_json(path)
        if sorted(set(cached.get("sources", {}).values())) == sources and (
            not groups or "by_group" in cached
        ):
            return Evaluation.from_json(cached)
    result = evaluate_checkpoint([Path(s) for s in sources], data, split, groups=groups).to_json()
    atomic_write_json(path, result)
    return Evaluation.from_json(result)


class Study:
    """The runs of one study: where each lives, how to train it, and its evaluation."""

    def __init__(
        self,
        out: str | os.PathLike,
        preset: str | os.PathLike = "study",
        overrides: Sequence[str] = (),
        fractions: Sequence[float] = FRACTIONS,
        main_fraction: float = MAIN_FRACTION,
        progress: ProgressFactory | None = None,
        gate: bool = True,
        options: Sequence[str] = (),
    ):
        self.out = Path(out)
        self.preset = preset
        self.overrides = list(overrides)
        self.fractions = tuple(sorted(set(fractions) | {main_fraction}))
        self.main_fraction = main_fraction
        self.progress = progress
        self.gate = gate
        unknown = [name for name in options if name not in OPTION_VARIANTS]
        if unknown:
            raise ValueError(f"unknown study variant {unknown[0]!r}; known: {', '.join(OPTION_VARIANTS)}")
        self.options = tuple(dict.fromkeys(options))
        self.base = load_config(preset, self.overrides)  # validates the overrides up front
        self.seconds: dict[str, float] = {}
        self.gates: dict[int, dict[str, GateRecord]] = {}  # seed → fraction label → val scores and verdict

    def config(self, seed: int, run_out: Path, extra: Sequence[str] = ()) -> Config:
        fixed = [
            f"data.root={self.data_root}",
            f"data.seed={seed}",
            f"run.seed={seed}",
            f"run.out={run_out}",
            f"run.progress={str(self.progress is not None).lower()}",
        ]
        return load_config(self.preset, [*self.overrides, *fixed, *extra])

    @property
    def data_root(self) -> Path:
        root = self.base.data.root
        if root and (Path(root) / "dataset.json").is_file():
            return Path(root)  # an existing dataset (e.g. a real one) is used as is
        return self.out / "data"

    def prepare_data(self, samples: int, workers: int | None = None) -> None:
        from faceparse.data.synth import generate_dataset

        if self.data_root != self.out / "data":
            console.print(f"using the dataset in {self.data_root}")
            return
        console.rule(f"[bold]study[/bold] synthetic dataset: {samples} heads at {self.base.data.size}²")
        with self.progress("synth") if self.progress is not None else nullcontext() as on_progress:
            generate_dataset(
                self.data_root, samples, self.base.data.size, seed=0, workers=workers, on_progress=on_progress
            )

    def _train(self, cfg: Config, stage: Stage, what: str) -> None:
        from faceparse.engine.loop import train

        tic = time.perf_counter()
        train(cfg, stage, resume=True, progress=self.progress)
        self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - tic

    def variants_for(self, fraction: float) -> tuple[str, ...]:
        """The main fraction: Table 7's rows, the control and the opted-in Eq. 4 readings; the other
        fractions (Figure 7): joint and its own control."""
        if math.isclose(fraction, self.main_fraction):
            return (*VARIANTS, *self.options)
        return ("control", "joint")

    def ordered_fractions(self) -> list[float]:
        """The main fraction first: its cells (Tables 2-4 and 7) finish before Figure 7's others."""
        return sorted(self.fractions, key=lambda f: (not math.isclose(f, self.main_fraction), f))

    def run_cell(self, seed: int, fraction: float) -> dict[str, Evaluation]:
        """Train and evaluate the runs of one (seed, fraction); returns ``{variant: scores}``."""
        return self._cell(seed, fraction, self.out / f"seed-{seed}", self.variants_for(fraction))

    def run_flip_cell(self, seed: int) -> dict[str, Evaluation]:
        """The flip diagnostic's arm: pre-training with the reference code's flip (no left/right swap),
        then the control and the joint phase with the correct flip; ``{variant: scores}``."""
        pre = ["data.flip_swap=false"]
        root = self.out / f"seed-{seed}" / FLIP_DIR
        return self._cell(seed, self.main_fraction, root, ("control", "joint"), pre, gated=False)

    def _cell(
        self,
        seed: int,
        fraction: float,
        seed_dir: Path,
        variants: Sequence[str],
        pretrain_extra: Sequence[str] = (),
        gated: bool = True,
    ) -> dict[str, Evaluation]:
        rgb_dir = seed_dir / PRETRAIN_RGB.name
        label = f"{fraction * 100:g}%"
        where = f"study seed {seed}" + ("" if gated else f" ({FLIP_DIR})")
        console.rule(f"[bold]{where}[/bold]: F_R pre-training (shared by every depth fraction)")
        self._train(self.config(seed, seed_dir, pretrain_extra), PRETRAIN_RGB, PRETRAIN_RGB.name)
        fdir = seed_dir / fraction_dir(fraction)
        cfg = self.config(seed, fdir, [f"data.depth_fraction={fraction}", *pretrain_extra])
        for stage in (PRETRAIN_DEPTH, PRETRAIN_TRANSLATOR):
            console.rule(f"[bold]{where}[/bold]: {stage.name}, {label} depth labels")
            self._train(cfg, stage, stage.name)
        data = str(self.data_root)
        depth_dir, translator_dir = fdir / PRETRAIN_DEPTH.name, fdir / PRETRAIN_TRANSLATOR.name
        pretrained = [rgb_dir, depth_dir, translator_dir]
        val = _evaluate_cached(fdir / "eval-val.json", pretrained, data, "val")
        main = math.isclose(fraction, self.main_fraction)
        self.check_gate(seed, label if gated else f"{label} {FLIP_DIR}", val, enforce=gated, depth=main)
        scores = {"baseline": _evaluate_cached(fdir / "eval-test.json", pretrained, data)}
        inits = [
            f"joint.init_rgb={rgb_dir}",
            f"joint.init_depth={depth_dir}",
            f"joint.init_translator={translator_dir}",
        ]
        for variant in variants:
            run_out = fdir if variant == "joint" else fdir / variant
            console.rule(f"[bold]{where}[/bold]: joint ({VARIANT_LABELS[variant]}), {label}")
            extra = [f"data.depth_fraction={fraction}", *inits, *variant_overrides(variant)]
            self._train(self.config(seed, run_out, extra), JOINT, f"joint-{variant}")
            joint_dir = run_out / JOINT.name
            scores[variant] = _evaluate_cached(joint_dir / "eval-test.json", [joint_dir], data)
        return scores

    def check_gate(
        self, seed: int, label: str, val: Evaluation, enforce: bool = True, depth: bool = True
    ) -> dict[str, Any]:
        """Record the competence verdict of one cell's pre-trained parsers; raise :class:`GateNotMet` on a
        miss if the gate is on and ``enforce`` (the flip arm's parsers are recorded, never enforced).

        ``depth=False`` (Figure 7's fractions other than the main one) enforces the RGB half only and
        records the depth parser's verdict: a depth parser trained on 1 % of the labels is weak by design,
        and how the method behaves with it is what Figure 7 asks (docs/method.md, "The study's competence
        gate")."""
        from faceparse.eval.gate import COMPETENCE

        verdict = COMPETENCE.check(val.rgb, val.depth)
        verdict["depth"]["enforced"] = depth
        self.gates.setdefault(seed, {})[label] = GateRecord(val, verdict)
        if not enforce:
            return verdict
        tasks = (("rgb", "RGB"), ("depth", "depth")) if depth else (("rgb", "RGB"),)
        if all(verdict[task]["passed"] for task, _ in tasks):
            what = "meet the competence gate" if depth else "meet the RGB half of the competence gate"
            console.print(f"seed {seed}, {label} depth labels: the pre-trained parsers {what}")
            if not depth and not verdict["depth"]["passed"]:
                console.print(
                    f"seed {seed}, {label} depth labels: the depth parser misses its half (recorded, not "
                    f"enforced away from the main fraction): {', '.join(verdict['depth']['failures'])}"
                )
            return verdict
        failed = "; ".join(
            f"{name} parser: " + ", ".join(verdict[task]["failures"])
            for task, name in tasks
            if not verdict[task]["passed"]
        )
        message = (
            f"seed {seed}, {label} depth labels: the pre-trained parsers miss the competence gate on the val "
            f"split ({failed}). A study of mutual learning between them would test nothing: pre-train longer "
            "or at a larger size (docs/results.md, 'Learning curves'), or pass --no-gate to run it anyway."
        )
        if self.gate:
            raise GateNotMet(message)
        console.print(f"[yellow]gate off:[/yellow] {message}")
        return verdict


def gate_tables(gates: Mapping[int, Mapping[str, GateRecord]], scheme: str) -> list:
    """Per seed and fraction: the pre-trained parsers' val F1 and the competence verdict."""
    from faceparse.eval.report import ReportTable, parsing_table

    rows: dict[str, ParsingScores | None] = {}
    verdicts = []
    for seed, cells in gates.items():
        for label, entry in cells.items():
            for task, name in _PARSERS:
                rows[f"seed {seed}, {label}: {name} parser"] = entry.val.parsing(task)
                gate = entry.verdict[task]
                verdict = "passes" if gate["passed"] else "fails: " + "; ".join(gate["failures"])
                if not gate.get("enforced", True):
                    verdict += " (recorded, not enforced: a Figure 7 fraction)"
                verdicts.append([f"seed {seed}, {label}", name, gate["thresholds"], verdict])
    title = "Competence gate: pre-trained parsers on the val split, F1 (%)"
    return [
        parsing_table(rows, scheme, title=title, bold_last=False),
        ReportTable(
            headers=["cell", "parser", "gate", "verdict"], rows=verdicts, title="Competence verdicts"
        ),
    ]


# --- aggregation ------------------------------------------------------------------------------------------


def _compared(run: Evaluation, task: Task) -> float:
    """What the paired differences compare: a parser's mean F1, the translator's L1 (NaN: not scored)."""
    if task == "translation":
        return run.translation.l1 if run.translation is not None else math.nan
    scores = run.parsing(task)
    return scores.mean_f1 if scores is not None else math.nan


def paired_deltas(
    per_seed: PerSeed, label: str, pairs: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """Per-seed differences ``a − b`` of RGB F1, depth F1 and L1, with mean, sample std and the sign count."""
    table: dict[str, dict[str, Any]] = {}
    for a, b in pairs:
        for task in TASKS:
            diffs = []
            for results in per_seed.values():
                runs = results.get(label, {})
                if a in runs and b in runs:
                    diffs.append(_compared(runs[a], task) - _compared(runs[b], task))
            arr = np.array([d for d in diffs if math.isfinite(d)])
            better = int((arr < 0).sum() if task == "translation" else (arr > 0).sum())
            stats = _mean_std(arr.tolist()) if arr.size else {"mean": math.nan, "std": math.nan}
            table[f"{a} − {b} / {task}"] = {
                "values": arr.tolist(),
                **stats,
                "improved_in": f"{better}/{arr.size}",
                "clear_of_zero": clear_of_zero(stats["mean"], stats["std"]),
            }
    return table


CLEAR_SEEDS = 5  # issue 9 / SCIENCE.md: a difference within one std of zero is reported over 5 seeds


def clear_of_zero(mean: float, std: float) -> bool | None:
    """Whether a paired difference is more than one sample std away from zero (None: fewer than 2 seeds).
    A difference that is not needs :data:`CLEAR_SEEDS` seeds before it is read either way."""
    if not (math.isfinite(mean) and math.isfinite(std)):
        return None
    return abs(mean) > std


def paired_class_deltas(
    per_seed: PerSeed, label: str, a: str = "joint", b: str = "control"
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-class paired differences ``a − b`` of F1 across seeds: ``{task: {class: {values, seeds, mean,
    std, improved_in}}}``. The paper's idea predicts F_R gains where depth is the better cue (ears, nose) and
    F_D where RGB is (eyes, brows, lips)."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for task in PARSING_TASKS:
        diffs: dict[str, dict[int, float]] = {}
        for seed, results in per_seed.items():
            for name, diff in _class_diffs(results.get(label, {}), a, b, task).items():
                diffs.setdefault(name, {})[int(seed)] = diff
        table[task] = {name: _delta_stats(by_seed) for name, by_seed in diffs.items()}
    return table


def _delta_stats(by_seed: Mapping[int, float]) -> dict[str, Any]:
    """One paired F1 difference over seeds: the per-seed values (and their seeds), mean, sample std and
    seeds improved."""
    values = list(by_seed.values())
    improved = f"{sum(v > 0 for v in values)}/{len(values)}"
    return {"values": values, "seeds": list(by_seed), **_mean_std(values), "improved_in": improved}


def paired_light_deltas(
    per_seed: PerSeed, label: str, a: str = "joint", b: str = "control"
) -> dict[str, dict[str, dict[str, Any]]]:
    """Paired mean-F1 differences ``a − b`` by light level: ``{task: {level: {values, seeds, mean, std,
    improved_in}}}``, each seed's ``a`` and ``b`` scored on the same test images of that level (paper §1:
    RGB suffers in dark and bright scenes, depth does not, so mutual learning should help F_R most there).
    A level where either run's F1 is undefined is left out for that seed."""
    from faceparse.data.format import LIGHT_LEVELS

    table: dict[str, dict[str, dict[str, Any]]] = {}
    for task in PARSING_TASKS:
        diffs: dict[str, dict[int, float]] = {}
        for seed, results in per_seed.items():
            runs = results.get(label, {})
            if a not in runs or b not in runs:
                continue
            ours, theirs = runs[a].by_group or {}, runs[b].by_group or {}
            for level in LIGHT_LEVELS:
                if level not in ours or level not in theirs:
                    continue
                left, right = ours[level].parsing(task), theirs[level].parsing(task)
                if left is None or right is None or math.isnan(left.mean_f1) or math.isnan(right.mean_f1):
                    continue
                diffs.setdefault(level, {})[int(seed)] = left.mean_f1 - right.mean_f1
        if diffs:
            table[task] = {level: _delta_stats(by_seed) for level, by_seed in diffs.items()}
    return table


def _class_diffs(runs: Runs, a: str, b: str, task: ParsingTask) -> dict[str, float]:
    """Per-class F1 differences ``a − b`` of one seed's runs for ``task`` (classes with an F1 in both)."""
    if a not in runs or b not in runs:
        return {}
    ours, theirs = runs[a].parsing(task), runs[b].parsing(task)
    if ours is None or theirs is None:
        return {}
    left, right = ours.per_class, theirs.per_class
    return {
        c: left[c] - right[c]
        for c in left
        if not math.isnan(left[c]) and not math.isnan(right.get(c, math.nan))
    }


def flip_diagnostic(
    per_seed: PerSeed, flip_per_seed: Mapping[int, Runs], main_label: str
) -> list[dict[str, Any]]:
    """Mean F1 change on the six left/right classes vs the other classes, per arm (correct flip; no-swap
    pre-training), pair (joint − baseline, control − baseline, joint − control) and parser; mean and sample
    std over seeds. The paper's Table 2 pattern is +16.2 on the left/right classes, +0.1 on the others."""
    arms: dict[str, dict[int, Runs]] = {
        "correct flip": {
            seed: results[main_label] for seed, results in per_seed.items() if main_label in results
        },
        "no-swap pre-training": dict(flip_per_seed),
    }
    rows = []
    for arm, runs_by_seed in arms.items():
        for a, b in (("joint", "baseline"), ("control", "baseline"), ("joint", "control")):
            for task in PARSING_TASKS:
                lr, other = [], []
                for runs in runs_by_seed.values():
                    diffs = _class_diffs(runs, a, b, task)
                    lr_values = [d for c, d in diffs.items() if c in LR_CLASSES]
                    other_values = [d for c, d in diffs.items() if c not in LR_CLASSES]
                    if lr_values and other_values:
                        lr.append(float(np.mean(lr_values)))
                        other.append(float(np.mean(other_values)))
                if lr:
                    rows.append(
                        {
                            "arm": arm,
                            "pair": f"{a} − {b}",
                            "task": task,
                            "n": len(lr),
                            "left_right": _mean_std(lr),
                            "others": _mean_std(other),
                        }
                    )
    return rows


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
    }


def flip_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    from faceparse.eval.report import ReportTable

    def cell(d: Mapping[str, float]) -> str:
        return f"{d['mean']:+.2f}" + (f" ± {d['std']:.2f}" if math.isfinite(d["std"]) else "")

    body = [
        [r["arm"], r["pair"], r["task"].upper() if r["task"] == "rgb" else "depth", cell(r["left_right"]),
         cell(r["others"]), f"{r['left_right']['mean'] - r['others']['mean']:+.2f}", str(r["n"])]
        for r in rows
    ]  # fmt: skip
    headers = ["arm", "difference", "parser", "left/right classes", "other classes", "gap", "seeds"]
    title = "Left/right-flip diagnostic: mean F1 change (points) on the six left/right classes vs the others"
    return ReportTable(headers=headers, rows=body, title=title)


def light_rows(
    per_seed: PerSeed,
    label: str,
    variants: Sequence[str] = ("baseline", "control", "joint"),
) -> dict[str, dict[str, dict[str, float]]]:
    """``{"<parser> <variant>": {level: {"mean", "std", "n"}}}``: mean F1 by light level over seeds
    (levels where a seed's F1 is undefined are left out for that seed)."""
    from faceparse.data.format import LIGHT_LEVELS

    rows: dict[str, dict[str, dict[str, float]]] = {}
    for variant in variants:
        for task, name in _PARSERS:
            by_level: dict[str, list[float]] = {}
            for results in per_seed.values():
                run = results.get(label, {}).get(variant)
                groups = (run.by_group if run is not None else None) or {}
                for level in LIGHT_LEVELS:
                    group = groups.get(level)
                    scores = group.parsing(task) if group is not None else None
                    if scores is not None and not math.isnan(scores.mean_f1):
                        by_level.setdefault(level, []).append(scores.mean_f1)
            if by_level:
                rows[f"{name} {VARIANT_LABELS[variant]}"] = {
                    level: {**_mean_std(values), "n": len(values)} for level, values in by_level.items()
                }
    return rows


def light_table(rows: Mapping[str, Mapping[str, Mapping[str, float]]], title: str) -> Any:
    from faceparse.data.format import LIGHT_LEVELS
    from faceparse.eval.report import ReportTable

    def cell(d: Mapping[str, float] | None) -> str:
        if d is None:
            return "N/A"
        return f"{d['mean']:.1f}" + (f" ± {d['std']:.1f}" if math.isfinite(d["std"]) else "")

    body = [[name, *(cell(levels.get(level)) for level in LIGHT_LEVELS)] for name, levels in rows.items()]
    return ReportTable(headers=["parser / run", *LIGHT_LEVELS], rows=body, title=title)


def class_delta_table(deltas: Mapping[str, Mapping[str, Mapping[str, Any]]], title: str) -> Any:
    """One row per class: RGB and depth paired differences (mean ± std, seeds improved)."""
    from faceparse.eval.report import ReportTable

    names = list(dict.fromkeys([*deltas.get("rgb", {}), *deltas.get("depth", {})]))
    rows = []
    for name in names:
        row = [name]
        for task in PARSING_TASKS:
            d = deltas.get(task, {}).get(name)
            row += [*_delta_cells(d, digits=2), _per_seed_cell(d)] if d else ["N/A", "N/A", "0/0", ""]
        rows.append(row)
    headers = ["class", "RGB mean", "RGB std", "RGB seeds improved", "RGB per seed"]
    headers += ["depth mean", "depth std", "depth seeds improved", "depth per seed"]
    return ReportTable(headers=headers, rows=rows, title=title, caption=PER_SEED_CAPTION)


PER_SEED_CAPTION = "Per seed: `seed: difference`, each seed's pair on the same test images."


def _per_seed_cell(delta: Mapping[str, Any]) -> str:
    """``"0: +1.2, 1: -0.3"``: a paired difference's value on each seed (``seeds`` where recorded)."""
    seeds = delta.get("seeds") or range(len(delta["values"]))
    return ", ".join(f"{seed}: {value:+.1f}" for seed, value in zip(seeds, delta["values"], strict=True))


def light_delta_table(deltas: Mapping[str, Mapping[str, Mapping[str, Any]]], title: str) -> Any:
    """One row per parser: the paired difference at each light level (mean ± std, seeds improved), then
    each seed's values."""
    from faceparse.data.format import LIGHT_LEVELS
    from faceparse.eval.report import ReportTable

    def cell(d: Mapping[str, Any] | None) -> str:
        if d is None:
            return "N/A"
        std = f" ± {d['std']:.2f}" if math.isfinite(d["std"]) else ""
        return f"{d['mean']:+.2f}{std} ({d['improved_in']})"

    rows = []
    for task, name in _PARSERS:
        levels = deltas.get(task)
        if levels:
            per_seed = "; ".join(f"{lv} {_per_seed_cell(levels[lv])}" for lv in LIGHT_LEVELS if lv in levels)
            rows.append([name, *(cell(levels.get(level)) for level in LIGHT_LEVELS), per_seed])
    headers = ["parser", *(f"{level} (seeds improved)" for level in LIGHT_LEVELS), "per seed"]
    return ReportTable(headers=headers, rows=rows, title=title, caption=PER_SEED_CAPTION)


def _scores_json(run: Evaluation) -> dict[str, Any]:
    """The scores of a run's networks in JSON form, ``{"rgb", "depth", "translation"}`` as present: what
    :func:`aggregate_study` averages over seeds (metadata and confusion matrices left out)."""
    parts = (("rgb", run.rgb), ("depth", run.depth), ("translation", run.translation))
    return {task: scores.to_json() for task, scores in parts if scores is not None}


def aggregate_study(per_seed: PerSeed, main_label: str) -> dict[str, Any]:
    """``aggregate_seeds`` of every (fraction, variant) cell across seeds (``cells``: label → variant →
    :class:`SeedAggregate` of the runs' ``{"rgb", "depth", "translation"}``), plus the paired deltas."""
    from faceparse.eval.report import aggregate_seeds

    # every cell and arm that any seed has (a merged study's seeds need not all have the same arms)
    arms = {
        label: list(dict.fromkeys(v for runs in per_seed.values() for v in runs.get(label, {})))
        for label in dict.fromkeys(label for runs in per_seed.values() for label in runs)
    }
    cells: dict[str, dict[str, SeedAggregate]] = {}
    for label, variants in arms.items():
        cells[label] = {}
        for variant in variants:
            seeds = [per_seed[s][label][variant] for s in per_seed if variant in per_seed[s].get(label, {})]
            cells[label][variant] = aggregate_seeds([_scores_json(run) for run in seeds])
    pairs: tuple[tuple[str, str], ...] = (
        ("joint", "baseline"),
        ("control", "baseline"),
        ("joint", "control"),
    )
    pairs += (("no-e2e", "control"), ("no-ml", "control"))
    options = [v for v in arms.get(main_label, []) if v in OPTION_VARIANTS]
    pairs += tuple((v, "control") for v in options) + tuple((v, "joint") for v in options)
    # every reading of Eq. 4 keeps L_E2E: against the + L_E2E-only arm, a difference is what that reading
    # of L_ML adds on top of L_E2E (the literal L_ML's: joint − no-ml), same seeds, same batches
    pairs += tuple((v, "no-ml") for v in ("joint", *options))
    deltas = paired_deltas(per_seed, main_label, pairs)
    for label in arms:
        if label != main_label:  # Figure 7's other fractions, each with its own control
            deltas |= {f"{k} @ {label}": v for k, v in paired_deltas(per_seed, label, pairs[:3]).items()}
    class_deltas = paired_class_deltas(per_seed, main_label, "joint", "control")
    return {"cells": cells, "deltas": deltas, "class_deltas": class_deltas}


def study_tables(summary: Mapping[str, Any], arch: str, scheme: str, main_label: str) -> list:
    """Tables 2-4 (baseline / control / joint), Table 7 (+ control), Figure 7's numbers, paired deltas."""
    from faceparse.eval.report import (
        ReportTable,
        ablation_table,
        fraction_table,
        parsing_table,
        translation_table,
    )
    from faceparse.eval.run import ARCH_NAMES

    name = ARCH_NAMES.get(arch, arch)
    cells: Mapping[str, SeedAggregate] = summary["cells"][main_label]
    order = [v for v in ("baseline", "control", "joint") if v in cells]
    tables = []
    for task, modality in (("rgb", "RGB"), ("depth", "Depth")):
        rows = {f"{name}_{modality} {VARIANT_LABELS[v]}": cells[v].part(task) for v in order}
        tables.append(
            parsing_table(rows, scheme, title=f"{modality} parsing F1 (%), {main_label} depth labels")
        )
    tables.append(
        translation_table(
            {f"Pix2Pix {VARIANT_LABELS[v]}": cells[v].part("translation") for v in order},
            title=f"RGB→depth L1 (nearness), {main_label} depth labels",
        )
    )
    ablation_order = [v for v in ("baseline", "control", "no-e2e", "no-ml", "joint") if v in cells]
    for task, modality in (("rgb", "RGB"), ("depth", "Depth")):
        tables.append(
            ablation_table(
                {f"{name}_{modality} {VARIANT_LABELS[v]}": cells[v].part(task) for v in ablation_order},
                title=f"Loss ablation (Table 7), {modality} mean F1 (%)",
            )
        )
    tables.append(
        translation_table(
            {f"Pix2Pix {VARIANT_LABELS[v]}": cells[v].part("translation") for v in ablation_order},
            title="Loss ablation, RGB→depth L1",
        )
    )
    options = [v for v in OPTION_VARIANTS if v in cells]
    if options:
        for task, modality in (("rgb", "RGB"), ("depth", "Depth")):
            tables.append(
                ablation_table(
                    {
                        f"{name}_{modality} {VARIANT_LABELS[v]}": cells[v].part(task)
                        for v in ("control", "joint", *options)
                        if v in cells
                    },
                    title=f"Readings of Eq. 4 (docs/method.md), {modality} mean F1 (%)",
                )
            )
    tables.append(fraction_table(summary["curves"], title="Depth-label fraction (Figure 7), mean F1 (%)"))
    delta_rows = [
        [
            key,
            *(_delta_cells(d, 1, "e") if "translation" in key else _delta_cells(d, 2)),
            clear_of_zero_cell(d),
        ]
        for key, d in summary["deltas"].items()
    ]
    tables.append(
        ReportTable(
            headers=[
                "Paired difference (per seed) / metric",
                "mean",
                "std",
                "seeds improved",
                "|mean| > std",
            ],
            rows=delta_rows,
            title="Paired differences across seeds (F1 in points; L1: negative = better)",
            caption=DELTA_CAPTION,
        )
    )
    if summary.get("class_deltas"):
        title = f"Per-class paired differences, joint − control, {main_label} depth labels (F1 points)"
        tables.append(class_delta_table(summary["class_deltas"], title))
    return tables


DELTA_CAPTION = (
    "Arms: "
    + "; ".join(f"{v} = {VARIANT_LABELS[v]}" for v in VARIANTS)
    + "; ml-*, depth-bn-separate = readings of Eq. 4 (docs/method.md), each with L_E2E. X − no-ml is "
    "what X's L_ML adds on top of L_E2E. A difference within one std of zero is read only over "
    f"{CLEAR_SEEDS} seeds."
)


def _delta_cells(delta: Mapping[str, Any], digits: int, fmt: str = "f") -> list[str]:
    """Mean, std and the sign count; ``fmt="e"`` for L1 differences, often ~1e-5 (fixed-point would show
    a clear difference as +0.0000 ± 0.0000)."""
    mean, std = delta["mean"], delta["std"]
    return [
        f"{mean:+.{digits}{fmt}}" if math.isfinite(mean) else "N/A",
        f"{std:.{digits}{fmt}}" if math.isfinite(std) else "N/A",
        delta["improved_in"],
    ]


def clear_of_zero_cell(delta: Mapping[str, Any]) -> str:
    """The paired table's last column: is the difference more than one std from zero?"""
    n = len(delta["values"])
    clear = clear_of_zero(delta["mean"], delta["std"])
    if clear is None:
        return "N/A (1 seed)" if n == 1 else "N/A"
    if not any(delta["values"]):  # e.g. L_E2E-only vs control for F_R: no gradient reaches it
        return "0 in every seed"
    if clear:
        return "yes"
    return "no" + (f": needs {CLEAR_SEEDS} seeds" if n < CLEAR_SEEDS else "")


def fraction_runs(per_seed: PerSeed) -> dict[str, dict[float, list[ParsingScores]]]:
    """Figure 7's inputs for ``fraction_curves``: RGB/depth × baseline/joint → fraction → per-seed scores."""
    runs: dict[str, dict[float, list[ParsingScores]]] = {}
    for results in per_seed.values():
        for label, cells in results.items():
            fraction = float(label.rstrip("%")) / 100.0
            for task, modality in zip(PARSING_TASKS, ("RGB", "Depth"), strict=True):
                for variant, what in (
                    ("baseline", "baseline"),
                    ("control", "control"),
                    ("joint", "+ our method"),
                ):
                    run = cells.get(variant)
                    scores = run.parsing(task) if run is not None else None
                    if scores is not None:
                        key = f"{modality} {what}"
                        runs.setdefault(key, {}).setdefault(fraction, []).append(scores)
    return runs


def _study_json(result: Mapping[str, Any]) -> dict[str, Any]:
    """``study.json``: :func:`run_study`'s result (less its tables) with every evaluation, gate record and
    seed aggregate in its JSON form."""
    summary = result["summary"]
    cells = {
        label: {variant: agg.to_json() for variant, agg in variants.items()}
        for label, variants in summary["cells"].items()
    }
    gate_cells = {
        seed: {label: record.to_json() for label, record in records.items()}
        for seed, records in result["gate"]["cells"].items()
    }
    per_seed = {
        seed: {
            label: {variant: run.to_json() for variant, run in runs.items()} for label, runs in labels.items()
        }
        for seed, labels in result["per_seed"].items()
    }
    flip_per_seed = {
        seed: {variant: run.to_json() for variant, run in runs.items()}
        for seed, runs in result["flip_per_seed"].items()
    }
    return jsonable(
        {
            **{key: value for key, value in result.items() if key != "tables"},
            "gate": {**result["gate"], "cells": gate_cells},
            "per_seed": per_seed,
            "flip_per_seed": flip_per_seed,
            "summary": {**summary, "cells": cells},
        }
    )


def run_study(
    preset: str | os.PathLike = "study",
    seeds: Sequence[int] | None = None,
    out: str | os.PathLike = "runs/study",
    overrides: Sequence[str] = (),
    *,
    samples: int | None = None,
    fractions: Sequence[float] | None = None,
    workers: int | None = None,
    progress: ProgressFactory | None = None,
    gate: bool | None = None,
    flip: bool | None = None,
    options: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the whole study and write ``study.md``, ``study.json`` and the plots into ``out``.

    Arguments left ``None`` come from the preset's ``study:`` section (``runs.config.StudyConfig``).
    With ``gate`` it stops with :class:`GateNotMet` at the first cell whose pre-trained parsers miss the
    competence gate on the val split. ``flip`` adds the left/right-flip diagnostic's arm; ``options``
    names :data:`OPTION_VARIANTS` (readings of Eq. 4) to run against the same control.

    Returns what ``study.json`` holds, typed (``per_seed`` and ``flip_per_seed``: :class:`Evaluation`
    objects, ``gate.cells``: :class:`GateRecord`, ``summary.cells``: :class:`SeedAggregate`), plus
    ``"tables"``."""
    design = load_config(preset, overrides).study
    seeds = list(design.seeds if seeds is None else seeds)
    samples = design.samples if samples is None else samples
    fractions = tuple(design.fractions if fractions is None else fractions)
    gate = design.gate if gate is None else gate
    flip = design.flip_diagnostic if flip is None else flip
    options = tuple(design.variants if options is None else options)
    if len(seeds) < 1:
        raise ValueError("the study needs at least one seed (3 or more for a standard deviation)")
    if not fractions or not all(0.0 < f <= 1.0 for f in fractions):
        raise ValueError(f"study fractions must be in (0, 1], got {list(fractions)}")
    study = Study(out, preset, overrides, fractions, progress=progress, gate=gate, options=options)
    study.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    study.prepare_data(samples, workers)
    per_seed: dict[int, dict[str, dict[str, Evaluation]]] = {int(seed): {} for seed in seeds}
    for fraction in study.ordered_fractions():  # every seed of the main fraction first
        for seed in per_seed:
            per_seed[seed][f"{fraction * 100:g}%"] = study.run_cell(seed, fraction)

    flip_per_seed = {seed: study.run_flip_cell(seed) for seed in per_seed} if flip else {}

    cfg = study.config(int(seeds[0]), study.out)
    meta = {
        "preset": str(preset),
        "overrides": list(overrides),
        "seeds": [int(s) for s in seeds],
        "variants": list(study.options),
        "samples": samples,
        "data": str(study.data_root),
        "size": cfg.data.size,
        "iterations": {
            "parsers": cfg.parsers.iterations,
            "translator": cfg.translator.iterations,
            "joint": cfg.joint.iterations,
        },
        "main_fraction": study.main_fraction,
        # what `auto` became on this machine: bf16 and fp32 runs of one preset are two designs
        "precision": resolved_precision(cfg.run.precision, cfg.run.accelerator),
    }
    seconds = {**study.seconds, "total_this_call": time.perf_counter() - started}
    return write_study_report(study.out, meta, per_seed, flip_per_seed, study.gates, gate, seconds)


def write_study_report(
    out: str | os.PathLike,
    meta: Mapping[str, Any],
    per_seed: PerSeed,
    flip_per_seed: Mapping[int, Runs],
    gates: Mapping[int, Mapping[str, GateRecord]],
    gate: bool,
    seconds: Mapping[str, float],
) -> dict[str, Any]:
    """Aggregate the evaluations of a study (trains and evaluates nothing) and write ``study.md``,
    ``study.json``, ``light.png``, ``light-paired.png``, ``ablation-{rgb,depth}.png`` and ``fraction.png``
    into ``out``.

    ``meta`` holds what ``study.json`` records of the design (``preset``, ``overrides``, ``seeds``,
    ``variants``, ``samples``, ``data``, ``size``, ``iterations``, ``main_fraction``, and ``precision``, the
    resolved ``run.precision``, where known). Returns what
    ``study.json`` holds, typed, plus ``"tables"``: :func:`run_study`'s result."""
    from faceparse.eval.figures import ablation_plot, fraction_plot, light_plot
    from faceparse.eval.report import fraction_curves, render_markdown
    from faceparse.utils.io import atomic_write_json, atomic_write_text

    out = Path(out)
    seeds = list(per_seed)
    main_label = f"{meta['main_fraction'] * 100:g}%"
    main_runs = [run for runs in per_seed.values() for run in runs.get(main_label, {}).values()]
    if not main_runs:
        raise ValueError(f"the study has no run of its main cell ({main_label} depth labels) to report")
    out.mkdir(parents=True, exist_ok=True)
    n_seeds = f"{len(seeds)} seed" + ("s" if len(seeds) != 1 else "")
    summary = aggregate_study(per_seed, main_label)
    if flip_per_seed:
        summary["flip_diagnostic"] = flip_diagnostic(per_seed, flip_per_seed, main_label)
    summary["curves"] = {
        **fraction_curves({k: v for k, v in fraction_runs(per_seed).items() if k.startswith("RGB")}),
        **fraction_curves({k: v for k, v in fraction_runs(per_seed).items() if k.startswith("Depth")}),
    }
    first = main_runs[0]  # what every run shares: the architecture and the label scheme
    tables = gate_tables(gates, first.scheme)
    tables += study_tables(summary, first.arch, first.scheme, main_label)
    if flip_per_seed:
        tables.append(flip_table(summary["flip_diagnostic"]))
    summary["light"] = light_rows(per_seed, main_label)
    if summary["light"]:
        title = f"Mean F1 (%) by light level (test split, {main_label} depth labels; paper §1's motivation)"
        tables.append(light_table(summary["light"], title))
        light_plot(out / "light.png", summary["light"], title=f"F1 by light level ({n_seeds})")
    summary["light_deltas"] = paired_light_deltas(per_seed, main_label, "joint", "control")
    if summary["light_deltas"]:
        pairs = {
            seed
            for levels in summary["light_deltas"].values()
            for d in levels.values()
            for seed in d["seeds"]
        }
        title = f"Paired differences by light level, joint − control, {main_label} depth labels (F1 points)"
        tables.append(light_delta_table(summary["light_deltas"], title))
        light_plot(
            out / "light-paired.png",
            {
                name: summary["light_deltas"][task]
                for task, name in _PARSERS
                if task in summary["light_deltas"]
            },
            title=f"Joint − control by light level ({len(pairs)} paired seeds)",
            difference=True,
        )

    cells = summary["cells"][main_label]
    order = [v for v in ("baseline", "control", "no-e2e", "no-ml", "joint", *OPTION_VARIANTS) if v in cells]
    for task in ("rgb", "depth"):
        ablation_plot(
            out / f"ablation-{task}.png",
            {VARIANT_LABELS[v]: cells[v].part(task) for v in order},
            title=f"Loss ablation, {task.upper() if task == 'rgb' else 'depth'} parser ({n_seeds})",
        )
    fraction_plot(out / "fraction.png", summary["curves"], title=f"Depth-label fraction ({n_seeds})")

    result = {
        **meta,
        "seeds": [int(s) for s in seeds],
        "gate": {"enabled": gate, "cells": gates},
        "per_seed": per_seed,
        "flip_per_seed": flip_per_seed,
        "summary": summary,
        "seconds": dict(seconds),
    }
    atomic_write_json(out / "study.json", _study_json(result))
    iterations = meta["iterations"]
    header = [
        f"# Study: {n_seeds}, preset {meta['preset']}, overrides {' '.join(meta['overrides']) or '(none)'}",
        "",
        f"Data {meta['data']} ({meta['size']}²), test split; "
        + (f"precision {meta['precision']}; " if meta.get("precision") else "")
        + f"iterations: parsers {iterations['parsers']}, "
        f"translator {iterations['translator']}, joint {iterations['joint']}. Values: mean ± sample std "
        "over seeds. Figures: fraction.png (Figure 7), ablation-rgb.png, ablation-depth.png (Table 7), "
        "light.png (F1 by light level, synthetic data), light-paired.png (joint − control by light level).",
        "",
        "",
    ]
    if meta.get("merged_from"):
        header[3:3] = ["", "Merged (`faceparse study-merge`) from: " + ", ".join(meta["merged_from"]) + "."]
    atomic_write_text(out / "study.md", "\n".join(header) + render_markdown(tables))
    result["tables"] = tables
    return result


# --- merging studies run apart ----------------------------------------------------------------------------

# what must agree between the study.json files that one report merges (the design, not where it ran)
_MERGE_KEYS = ("preset", "size", "samples", "iterations", "main_fraction")
# what an evaluation records of where it ran (paths), left out when two evaluations of one run are compared
_WHERE = ("checkpoint", "sources", "data")


@dataclass
class StudyRecord:
    """What one ``study.json`` holds, typed: the design (``meta``), the evaluations and the gate records."""

    path: Path
    meta: dict[str, Any]
    per_seed: dict[int, dict[str, dict[str, Evaluation]]]
    flip_per_seed: dict[int, dict[str, Evaluation]]
    gates: dict[int, dict[str, GateRecord]]
    gate: bool


def load_study(path: str | os.PathLike) -> StudyRecord:
    """Read a ``study.json`` written by :func:`run_study` or :func:`merge_studies` (a clear
    :class:`~faceparse.utils.io.DataError` naming the file when it is not one)."""
    from faceparse.utils.io import DataError, read_json

    path = Path(path)
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise DataError(path, "not a study.json written by faceparse study (not a JSON object)")
    missing = [key for key in ("per_seed", "gate", "iterations", "preset") if key not in raw]
    if missing:
        raise DataError(path, f"not a study.json written by faceparse study (missing {', '.join(missing)})")
    try:
        per_seed = {
            int(seed): {
                label: {variant: Evaluation.from_json(run) for variant, run in runs.items()}
                for label, runs in labels.items()
            }
            for seed, labels in raw["per_seed"].items()
        }
        flip_per_seed = {
            int(seed): {variant: Evaluation.from_json(run) for variant, run in runs.items()}
            for seed, runs in raw.get("flip_per_seed", {}).items()
        }
        gates = {
            int(seed): {
                label: GateRecord(Evaluation.from_json(record["val"]), record["gate"])
                for label, record in records.items()
            }
            for seed, records in raw["gate"].get("cells", {}).items()
        }
        meta = {key: raw[key] for key in ("preset", "overrides", "variants", "samples", "data", "size")}
        meta["iterations"] = dict(raw["iterations"])
        enabled = bool(raw["gate"].get("enabled", True))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(path, f"malformed study.json ({type(e).__name__}: {e})") from None
    meta["main_fraction"] = raw.get("main_fraction", MAIN_FRACTION)  # files written before it was recorded
    meta["precision"] = raw.get("precision")  # None: written before it was recorded
    return StudyRecord(path, meta, per_seed, flip_per_seed, gates, enabled)


def _design_overrides(overrides: Sequence[str]) -> list[str]:
    """A study's overrides less those that do not change what it trains (where the data and the runs live,
    logging, checkpoint cadence: :func:`~faceparse.runs.config.resume_safe`)."""
    from faceparse.runs.config import resume_safe

    kept = []
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key != "data.root" and not resume_safe(key):
            kept.append(item)
    return sorted(kept)


def _fingerprint(run: Evaluation) -> dict[str, Any]:
    """An evaluation less where it ran: equal for two evaluations of the same networks on the same data."""
    return {key: value for key, value in run.to_json().items() if key not in _WHERE}


def merge_studies(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict[str, Any]:
    """One report from several ``study.json`` files: seeds, cells and arms run apart (other sessions or
    machines, e.g. seed 0's readings of Eq. 4 on one machine and seed 1's on another). Trains and
    evaluates nothing; writes what :func:`run_study` writes into ``out`` and returns its result.

    Refused, naming the files and what differs, when the studies do not share a design (preset, image
    size, samples, iterations, main fraction, the precision their runs trained in where recorded, and the
    overrides that change training), when one run
    appears in two files with different scores, and when one (seed, fraction) cell's arms come from
    different pre-trained networks (their baselines differ): arms that do not share their pre-trained
    triple and batches are not paired, and a paired difference between them would mean nothing."""
    from faceparse.utils.io import DataError

    if not paths:
        raise ValueError("study-merge needs at least one study.json")
    records = [load_study(path) for path in paths]
    base = records[0]
    for record in records[1:]:
        for key in _MERGE_KEYS:
            if record.meta[key] != base.meta[key]:
                raise DataError(
                    record.path,
                    f"a different study design from {base.path}: {key} {record.meta[key]!r} vs "
                    f"{base.meta[key]!r}; only studies of one design merge",
                )
        ours, theirs = _design_overrides(record.meta["overrides"]), _design_overrides(base.meta["overrides"])
        if ours != theirs:
            raise DataError(
                record.path,
                f"a different study design from {base.path}: overrides {ours} vs {theirs}; only studies "
                "of one design merge",
            )

    # files written before the precision was recorded (None) merge with any
    precisions = {r.meta["precision"]: r.path for r in records if r.meta["precision"]}
    if len(precisions) > 1:
        first, *others = precisions.items()
        raise DataError(
            others[0][1],
            f"a different study design from {first[1]}: its runs trained in {others[0][0]}, those in "
            f"{first[0]} (run.precision auto resolves per machine); only studies of one precision merge",
        )

    per_seed: dict[int, dict[str, dict[str, Evaluation]]] = {}
    flip_per_seed: dict[int, dict[str, Evaluation]] = {}
    gates: dict[int, dict[str, GateRecord]] = {}
    origin: dict[tuple[Any, ...], Path] = {}  # (kind, seed, label, variant) → the file it came from

    def put(store: dict[str, Any], key: str, value: Any, where: tuple[Any, ...], record: StudyRecord) -> None:
        if key in store:
            same = (
                _fingerprint(store[key]) == _fingerprint(value)
                if isinstance(value, Evaluation)
                else _fingerprint(store[key].val) == _fingerprint(value.val)
            )
            if not same:
                what = " ".join(str(part) for part in where)
                raise DataError(
                    record.path,
                    f"{what} differs from the same run in {origin[where]}: two different trainings of one "
                    "run cannot both be reported",
                )
            return
        store[key] = value
        origin[where] = record.path

    for record in records:
        for seed, labels in record.per_seed.items():
            for label, runs in labels.items():
                cell = per_seed.setdefault(seed, {}).setdefault(label, {})
                if (
                    "baseline" in cell
                    and "baseline" in runs
                    and _fingerprint(cell["baseline"]) != _fingerprint(runs["baseline"])
                ):
                    raise DataError(
                        record.path,
                        f"seed {seed}, {label} depth labels: its pre-trained networks (the baseline's "
                        f"scores) differ from those of {origin[('cell', seed, label, 'baseline')]}, so "
                        "their arms are not paired; re-run one file's arms from the other's pre-training",
                    )
                for variant, run in runs.items():
                    put(cell, variant, run, ("cell", seed, label, variant), record)
        for seed, runs in record.flip_per_seed.items():
            cell = flip_per_seed.setdefault(seed, {})
            for variant, run in runs.items():
                put(cell, variant, run, ("flip arm", seed, FLIP_DIR, variant), record)
        for seed, records_of_seed in record.gates.items():
            for label, gate_record in records_of_seed.items():
                put(gates.setdefault(seed, {}), label, gate_record, ("gate", seed, label), record)

    order = sorted(per_seed)
    meta = {
        **base.meta,
        "variants": list(dict.fromkeys(v for r in records for v in r.meta["variants"])),
        "data": ", ".join(dict.fromkeys(r.meta["data"] for r in records)),
        "merged_from": [str(r.path) for r in records],
        # the one recorded, unless some file did not record it
        "precision": next(iter(precisions)) if all(r.meta["precision"] for r in records) else None,
    }
    return write_study_report(
        out,
        meta,
        {seed: per_seed[seed] for seed in order},
        {seed: flip_per_seed[seed] for seed in sorted(flip_per_seed)},
        {seed: gates[seed] for seed in sorted(gates)},
        all(r.gate for r in records),
        {},
    )
