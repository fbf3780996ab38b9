"""`faceparse evaluate`, `faceparse demo`, `faceparse study`: evaluate checkpoints, run the whole method on
synthetic data, and compare baseline / joint / control over seeds."""

from __future__ import annotations

from pathlib import Path

import typer

from faceparse.cli import app
from faceparse.cli.common import check_device, console, fail, friendly_errors, progress, progress_bar


def _stopped(error: Exception) -> typer.Exit:
    """A training stage stopped (interrupted after saving, or a non-finite loss): one line, an exit code."""
    console.print(f"[red]stopped:[/red] {error} (run the same command again to resume)")
    return typer.Exit(130 if "interrupted" in str(error) else 1)


def _print_tables(tables: list) -> None:
    from rich.console import Console

    from faceparse.eval.report import transpose

    out = Console()  # results on stdout, messages on stderr
    for table in tables:
        wide = table.rich()
        needed = out.measure(wide, options=out.options.update_width(10_000)).maximum
        out.print(wide if needed <= out.width else transpose(table).rich())


@app.command("evaluate")
@friendly_errors
def evaluate_command(
    checkpoint: Path = typer.Option(
        ...,
        "--checkpoint",
        "-c",
        help="Checkpoint, stage or run folder (a run folder means its joint stage).",
    ),
    data: Path = typer.Option(
        None, "--data", "-d", help="Dataset folder (default: data.root of the checkpoint's config)."
    ),
    split: str = typer.Option("test", "--split", help="Split to evaluate (train, val, test, ...)."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Write evaluation.md, evaluation.json and qualitative.png here."
    ),
    baseline: list[Path] = typer.Option(
        None,
        "--baseline",
        "-b",
        help="Baseline to compare with: a run folder (its three pre-trained stages) or checkpoints (repeat).",
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option(
        "cpu", "--device", callback=check_device, help="Torch device, e.g. cpu or cuda:0."
    ),
    size: int = typer.Option(
        None, "--size", min=16, help="Network input size (default: the config's data.size)."
    ),
) -> None:
    """F1 per class and mean F1 (one confusion matrix over the split) for the RGB and depth parsers, and the
    translator's L1; with --baseline, baseline vs joint rows as in the paper's Tables 2-4."""
    from faceparse.eval.run import evaluate_report

    base = None
    if baseline:
        base = baseline[0] if len(baseline) == 1 else list(baseline)
    with progress(transient=True) as bar:
        task = bar.add_task("evaluating", total=None, info=split)
        result, tables = evaluate_report(
            checkpoint,
            data,
            split,
            out,
            base,
            batch_size=batch_size,
            device=device,
            size=size,
            on_batch=lambda done, total: bar.update(task, completed=done, total=total),
        )
    _print_tables(tables)
    joint = result.joint
    console.print(f"{joint.images} images ({joint.images_with_depth} with depth), {joint.scheme}")
    if out is not None:
        console.print(f"[green]wrote[/green] {out}/evaluation.md, evaluation.json, qualitative.png")


@app.command("demo")
@friendly_errors
def demo_command(
    out: Path = typer.Option(
        Path("faceparse-demo"), "--out", "-o", help="Folder for data, runs and the report."
    ),
    workers: int = typer.Option(
        None, "--workers", "-w", min=1, help="Processes for data generation (default: all cores)."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Smoke test: 40 images at 32², a few iterations per stage (about a minute)."
    ),
    samples: int = typer.Option(
        None, "--samples", min=10, help="Synthetic samples (default 1500; quick 40)."
    ),
    overrides: list[str] = typer.Argument(
        None,
        help="Extra config overrides (key=value) on top of configs/demo.yaml, e.g. joint.iterations=100.",
    ),
) -> None:
    """Generate synthetic RGB-D heads, pre-train the three networks, train them jointly (Eq. 4), check the
    competence gate (val) and the demo target (test), evaluate baselines vs joint on the test split, and
    write OUT/report.md, report.json and qualitative.png. About 20 minutes on 2 CPU cores (configs/demo.yaml);
    needs no data and no download; re-running resumes."""
    from faceparse.engine.loop import TrainingStopped
    from faceparse.workflows.demo import run_demo

    try:
        report, tables = run_demo(out, workers, quick, list(overrides or []), samples, progress=progress_bar)
    except TrainingStopped as e:
        raise _stopped(e) from None
    except ValueError as e:
        raise fail(e) from None
    _print_tables(tables)
    console.print(f"[green]demo done[/green] in {report['seconds']['total']:.0f} s: {out}/report.md")


@app.command("study")
@friendly_errors
def study_command(
    overrides: list[str] = typer.Argument(
        None,
        help="Config overrides (key=value) applied to every run, e.g. data.size=64 joint.iterations=200.",
    ),
    preset: str = typer.Option("study", "--preset", "-p", help="Config preset or YAML file for every run."),
    seeds: list[int] = typer.Option(
        None, "--seeds", "-s", help="Seeds (repeat: --seeds 0 --seeds 1 --seeds 2). Default: study.seeds."
    ),
    out: Path = typer.Option(Path("runs/study"), "--out", "-o", help="Folder for data, runs and the report."),
    samples: int = typer.Option(
        None,
        "--samples",
        min=10,
        help="Synthetic samples (when data.root holds none). Default: study.samples.",
    ),
    fractions: list[float] = typer.Option(
        None,
        "--fraction",
        help="Depth-label fractions for Figure 7, each with its own control (repeat the option). "
        "Default: study.fractions.",
    ),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Processes for data generation."),
    gate: bool = typer.Option(
        None,
        "--gate/--no-gate",
        help="Stop unless the pre-trained parsers meet the competence gate on the val split (RGB ≥ 50 F1 on "
        "every class and ≥ 70 mean; depth ≥ 50 mean, no class below 20), naming the failing classes; "
        "--no-gate runs anyway and records the verdicts. Default: study.gate (on).",
    ),
    variants: list[str] = typer.Option(
        None,
        "--variant",
        help="Also run a reading of Eq. 4 that the paper leaves open, against the same control (repeat the "
        "option): ml-probs, ml-kl, ml-gated, ml-confident, ml-warmup, depth-bn-separate (docs/method.md). "
        "Default: study.variants.",
    ),
    flip_diagnostic: bool = typer.Option(
        None,
        "--flip-diagnostic/--no-flip-diagnostic",
        help="Also pre-train each seed with the reference code's flip (no left/right label swap, FACTS §5), "
        "then run the control and joint phases with the correct flip, and report the change on the six "
        "left/right classes vs the others in both arms (SCIENCE.md: the paper's largest gain). "
        "Default: study.flip_diagnostic.",
    ),
) -> None:
    """Does cross-domain mutual learning help? Baseline vs joint vs a same-length control (λ1 = λ2 = 0),
    the loss ablation (Table 7), the depth-label fractions (Figure 7, each with its own control), the
    readings of Eq. 4 (--variant) and the left/right-flip diagnostic (--flip-diagnostic), over several
    seeds, after a competence gate on the pre-trained parsers (--no-gate to skip). Reports per-seed and
    per-class paired differences (joint − control, each seed's value), F1 by light level and joint −
    control by light level. Writes OUT/study.md, study.json and plots. Resumable."""
    from faceparse.engine.loop import TrainingStopped
    from faceparse.workflows.study import GateNotMet, run_study

    try:
        result = run_study(
            preset,
            seeds or None,
            out,
            list(overrides or []),
            samples=samples,
            fractions=fractions or None,
            workers=workers,
            gate=gate,
            flip=flip_diagnostic,
            options=variants or None,
            progress=progress_bar,
        )
    except GateNotMet as e:
        raise fail(e) from None
    except TrainingStopped as e:
        raise _stopped(e) from None
    except ValueError as e:
        raise fail(e) from None
    _print_tables(result["tables"])
    if len(result["seeds"]) < 3:
        console.print("[yellow]note:[/yellow] fewer than 3 seeds: the standard deviations are not meaningful")
    console.print(f"[green]study done[/green]: {out}/study.md")


@app.command("study-merge")
@friendly_errors
def study_merge_command(
    studies: list[Path] = typer.Argument(
        ...,
        help="study.json files of one study design, written by `faceparse study` (or an earlier merge) "
        "in other folders, sessions or machines.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the merged study.md, study.json and plots."
    ),
) -> None:
    """One study report from several study.json files: seeds, cells, readings of Eq. 4 and flip arms run
    apart are merged and aggregated as `faceparse study` would (paired differences, per-class, light
    levels, plots). Trains nothing and reads no checkpoint. Refuses files of another design, one run with
    two different scores, and arms of one cell whose pre-trained networks differ (not paired)."""
    from faceparse.workflows.study import merge_studies

    target = (out / "study.json").resolve()
    if any(path.resolve() == target for path in studies):
        raise fail(f"{out}: holds one of the inputs ({target.name}); write the merge into another folder")
    try:
        result = merge_studies(studies, out)
    except ValueError as e:
        raise fail(e) from None
    _print_tables(result["tables"])
    if len(result["seeds"]) < 3:
        console.print("[yellow]note:[/yellow] fewer than 3 seeds: the standard deviations are not meaningful")
    console.print(
        f"[green]merged {len(studies)} studies[/green] ({len(result['seeds'])} seeds): {out}/study.md"
    )
