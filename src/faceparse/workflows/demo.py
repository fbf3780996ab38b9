"""``faceparse demo``: the whole method on synthetic RGB-D heads, from a fresh install, in minutes on a CPU.

1. generate a synthetic dataset (:func:`faceparse.data.synth.generate_dataset`) into ``OUT/data``;
2. pre-train F_R, F_D and G+D separately (paper §4.2), 3. train them jointly (Eq. 4), into ``OUT/runs``;
4. evaluate the pre-trained networks (the baselines) and the joint model on the test split;
5. write ``OUT/report.md``, ``OUT/report.json`` and ``OUT/qualitative.png``.

Every step is resumable: existing samples are skipped, finished stages are skipped and unfinished ones
continue from their last checkpoint. The preset is ``configs/demo.yaml``: the synthetic recipe
(``configs/synthetic.yaml``: heads framed like CelebAMask-HQ) cut to fit about 20 minutes on a 2-core CPU,
with 128² training windows of 192² heads and Adam for the parsers (docs/results.md has the learning
curves and pilots behind the choice; docs/method.md why Adam is an option, not the paper's). The report
says whether the pre-trained parsers meet the competence gate (val split) and the demo target (test
split) of :mod:`faceparse.eval.gate`. These are NOT the paper's settings; ``faceparse study`` compares
baseline, joint and a same-length control over seeds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from faceparse.runs.config import Config, load_config
from faceparse.runs.stages import JOINT, PRETRAIN, STAGES
from faceparse.utils.progress import ProgressFactory, console

DEMO_SAMPLES = 1500  # 1200 train (120 with depth labels) / 150 val / 150 test (synth's 80/10/10 split)
QUICK_SAMPLES = 40
BUDGET_S = 20 * 60  # the demo's wall-time budget on a 2-core CPU
# --quick: a smoke test of the whole pipeline in about a minute (tiny images, a handful of iterations)
QUICK_OVERRIDES = (
    "data.size=32",
    "data.crop=null",
    "parsers.iterations=8",
    "parsers.depth_iterations=8",
    "parsers.batch_size=4",
    "translator.iterations=8",
    "translator.batch_size=2",
    "joint.iterations=6",
    "joint.batch_size=4",
    "run.log_every=2",
    "run.ckpt_every=4",
    "run.eval_every=0",
)


def demo_config(
    out: str | os.PathLike, quick: bool = False, overrides: Sequence[str] = (), progress: bool = False
) -> Config:
    """The ``demo`` preset with data and runs inside ``out`` (``quick``: the tiny smoke-test settings)."""
    out = Path(out)
    placed = [f"data.root={out / 'data'}", f"run.out={out / 'runs'}", f"run.progress={str(progress).lower()}"]
    return load_config("demo", [*placed, *(QUICK_OVERRIDES if quick else ()), *overrides])


def _step(number: int, text: str) -> None:
    console.rule(f"[bold]demo {number}/5[/bold] {text}")


def run_demo(
    out: str | os.PathLike = "faceparse-demo",
    workers: int | None = None,
    quick: bool = False,
    overrides: Sequence[str] = (),
    samples: int | None = None,
    progress: ProgressFactory | None = None,
) -> tuple[dict[str, Any], list]:
    """Run the five demo steps into ``out``; returns (the report dict of ``report.json``, the tables).

    ``progress`` opens one progress report per part (the CLI passes ``utils.progress.progress_bar``);
    None reports nothing.

    ``report.json`` holds ``rgb``/``depth`` → ``baseline``/``joint`` → ``ParsingScores.to_json()``
    (``mean_f1`` and ``per_class`` in percent), ``translation`` → ``baseline``/``joint`` →
    ``TranslationScores.to_json()`` (``{"l1", "l1_fg"}``), the same three for the val split (``val``),
    the gate verdicts, plus the dataset, config overrides, the checkpoints used and the seconds each step
    took.
    """
    from faceparse.data.synth import generate_dataset
    from faceparse.engine.loop import train
    from faceparse.eval.gate import COMPETENCE, DEMO_TARGET
    from faceparse.eval.results import optional_json
    from faceparse.eval.run import comparison_tables, evaluate_checkpoint, evaluation_markdown, summary_figure
    from faceparse.utils.io import atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(out, quick, overrides, progress is not None)
    num = samples or (QUICK_SAMPLES if quick else DEMO_SAMPLES)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    _step(1, f"synthetic RGB-D dataset: {num} heads at {cfg.data.size}² → {cfg.data.root}")
    tic = time.perf_counter()
    with progress("synth") if progress is not None else nullcontext() as on_progress:
        generate_dataset(cfg.data.root, num, cfg.data.size, seed=0, workers=workers, on_progress=on_progress)
    seconds["data"] = time.perf_counter() - tic

    for number, stages in ((2, PRETRAIN), (3, (JOINT,))):
        _step(number, "pre-training F_R, F_D, G+D (paper §4.2)" if number == 2 else "joint training (Eq. 4)")
        for stage in stages:
            tic = time.perf_counter()
            train(cfg, stage, resume=True, progress=progress)
            seconds[stage.name] = time.perf_counter() - tic

    _step(4, "evaluation: competence gate (val), pre-trained baselines vs joint model (test)")
    tic = time.perf_counter()
    runs = Path(cfg.run.out)
    val = evaluate_checkpoint(runs, cfg.data.root, "val", pretrained=True, num_examples=0)
    baseline = evaluate_checkpoint(runs, cfg.data.root, "test", pretrained=True)
    joint = evaluate_checkpoint(runs / JOINT.name, cfg.data.root, "test")
    seconds["evaluate"] = time.perf_counter() - tic

    _step(5, f"report → {out}")
    tables = comparison_tables(joint, baseline)
    report: dict[str, Any] = {
        "rgb": {"baseline": optional_json(baseline.rgb), "joint": optional_json(joint.rgb)},
        "depth": {"baseline": optional_json(baseline.depth), "joint": optional_json(joint.depth)},
        "translation": {
            "baseline": optional_json(baseline.translation),
            "joint": optional_json(joint.translation),
        },
    }
    seconds["total"] = time.perf_counter() - started
    gates = {
        "competence": COMPETENCE.check(val.rgb, val.depth),
        "demo_target": DEMO_TARGET.check(baseline.rgb, baseline.depth),
        "demo_target_joint": DEMO_TARGET.check(joint.rgb, joint.depth),
    }
    report |= {
        "val": {
            "rgb": optional_json(val.rgb),
            "depth": optional_json(val.depth),
            "translation": optional_json(val.translation),
        },
        "gates": gates,
        "data": {
            "root": str(cfg.data.root),
            "samples": num,
            "size": cfg.data.size,
            "crop": cfg.data.crop,
            "test_images": joint.images,
        },
        "overrides": [*(QUICK_OVERRIDES if quick else ()), *overrides],
        "checkpoints": {"baseline": baseline.sources, "joint": joint.sources},
        "seconds": seconds,
    }
    atomic_write_json(out / "report.json", report)
    atomic_write_text(
        out / "report.md",
        evaluation_markdown(joint, baseline, tables) + _gates_note(gates, seconds["total"], cfg),
    )
    summary_figure(out / "qualitative.png", joint, baseline, joint.scheme)
    return report, tables


def _preset_summary(cfg: Config) -> str:
    """What the demo trained, read from its config (so the report cannot drift from the preset)."""
    from faceparse.runs.config import train_window

    window, size = train_window(cfg), cfg.data.size
    data = f"{size}² heads" if window == size else f"{window}² training windows of {size}² heads"
    if cfg.parsers.optimizer == "sgd":
        optim = "the paper's SGD"
    else:
        optim = f"{cfg.parsers.optimizer.capitalize()} (lr {cfg.parsers.lr:g}) for the parsers"
    names = ("RGB parser", "depth parser", "translator", "joint")
    lengths = ", ".join(
        f"{name} {stage.plan(cfg).iterations}" for name, stage in zip(names, STAGES, strict=True)
    )
    return f"{data}, {optim}; iterations: {lengths}"


def _gates_note(gates: dict[str, Any], total_s: float, cfg: Config) -> str:
    from faceparse.eval.gate import gate_markdown

    within = "within" if total_s <= BUDGET_S else "OVER"
    return "\n\n".join(
        [
            "",
            "## Are the parsers competent?",
            gate_markdown(gates["competence"])
            + "\n\n(pre-trained parsers; `faceparse.eval.gate.COMPETENCE`)",
            gate_markdown(gates["demo_target"]) + "\n\n(pre-trained parsers)",
            gate_markdown(gates["demo_target_joint"]) + "\n\n(after joint training)",
            f"The demo took {total_s / 60:.1f} min ({within} its {BUDGET_S // 60}-minute budget on "
            "2 CPU cores). "
            f"Demo preset (configs/demo.yaml): {_preset_summary(cfg)}. Not the paper's settings "
            "(100K iterations at 448-512²); docs/results.md has the learning curves and pilots behind it. "
            "`faceparse study -p study-competent` compares baseline, joint and a same-length control over "
            "seeds, after the competence gate.\n",
        ]
    )
