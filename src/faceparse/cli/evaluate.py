"""`faceparse score-masks`: score folders of predicted label PNGs with the dataset-level F1 protocol.

(`faceparse evaluate`, which runs a checkpoint over a dataset split, is in `cli/run.py`.)
"""

from __future__ import annotations

from pathlib import Path

import typer

from faceparse.cli import app
from faceparse.cli.common import console, friendly_errors, progress


@app.command("score-masks")
@friendly_errors
def score_masks_command(
    pred: Path = typer.Option(..., "--pred", help="Folder of predicted label maps: 8-bit id PNGs, <id>.png."),
    gt: Path = typer.Option(..., "--gt", help="Folder of ground-truth label maps with the same file names."),
    scheme: str = typer.Option(
        ..., "--scheme", help="Label scheme of both folders: celebamask13, lapa11, helen11, celebamask19, ..."
    ),
    json_out: Path = typer.Option(None, "--json", help="Also write the scores to this JSON file."),
    ignore_missing: bool = typer.Option(
        False, "--ignore-missing", help="Score the file names present in both folders instead of failing."
    ),
) -> None:
    """Per-class, mean and (Helen) overall F1 from ONE confusion matrix over every pixel of every image."""
    from rich.console import Console

    from faceparse.eval.metrics import score_masks
    from faceparse.eval.report import parsing_table, transpose
    from faceparse.labels import get_scheme
    from faceparse.utils.io import DataError, atomic_write_json

    try:
        label_scheme = get_scheme(scheme)
    except KeyError as e:
        raise DataError(None, str(e.args[0])) from None
    with progress(transient=True) as bar:
        task = bar.add_task("scoring", total=None, info="")
        scores = score_masks(
            pred,
            gt,
            label_scheme,
            ignore_missing=ignore_missing,
            on_image=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if scores.missing:
        skipped = len(scores.missing)
        console.print(
            f"[yellow]note:[/yellow] {skipped} ground-truth maps had no prediction and were skipped"
        )
    table = parsing_table(
        {pred.name or str(pred): scores.parsing},
        label_scheme,
        title=f"{label_scheme.name} F1 (%)",
        caption=f"{scores.images} images, one confusion matrix",
        full=label_scheme.name.startswith("helen"),
        bold_last=False,
    )
    out = Console()  # the result goes to stdout, messages to stderr
    wide = table.rich()
    needed = out.measure(wide, options=out.options.update_width(10_000)).maximum
    out.print(wide if needed <= out.width else transpose(table).rich())
    if json_out is not None:
        atomic_write_json(json_out, scores.to_json())
        console.print(f"wrote {json_out}")


@app.command("curves")
@friendly_errors
def curves_command(
    stages: list[Path] = typer.Argument(
        ...,
        help="Stage folders holding a val.csv (run.eval_every), e.g. runs/x/pretrain-rgb; or val.csv files.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write (one panel per stage)."),
    task: str = typer.Option("rgb", "--task", help="rgb | depth: which parser's F1 to plot."),
    scheme: str = typer.Option("celebamask13", "--scheme", help="Label scheme (for the class names)."),
    markdown: Path = typer.Option(None, "--markdown", help="Also write the table as Markdown to this file."),
    x: str = typer.Option(
        "minutes", "--x", help="minutes | iterations: the plot's x axis (iterations compare machines)."
    ),
) -> None:
    """Learning curves: per-class val F1 against training minutes or iterations (a plot and a table)."""
    from rich.table import Table

    from faceparse.eval.figures import learning_curves_plot, read_val_csv
    from faceparse.labels import get_scheme
    from faceparse.utils.io import DataError

    if task not in ("rgb", "depth"):
        raise DataError(None, f"--task must be rgb or depth, got {task!r}")
    if x not in ("minutes", "iterations"):
        raise DataError(None, f"--x must be minutes or iterations, got {x!r}")
    classes = [c for c in get_scheme(scheme).classes[1:]]
    curves = {}
    for stage in stages:
        path = stage if stage.suffix == ".csv" else stage / "val.csv"
        # a stage folder's val.csv is named by run/stage; a renamed copy (NAME-val.csv) by its own name
        if path.name == "val.csv":
            label = f"{path.parent.parent.name}/{path.parent.name}"
        else:
            label = path.stem.removesuffix("-val")
        if label in curves:
            raise DataError(path, f"two inputs share the label {label!r}: rename one of them")
        curves[label] = read_val_csv(path)
    learning_curves_plot(curves, out, task, classes, x=x)
    header = ["run", "iteration", "minutes", "mean", *classes]
    rows = []
    for label, columns in curves.items():
        missing = [float("nan")] * len(columns["iteration"])
        for i, iteration in enumerate(columns["iteration"]):
            cells = [f"{columns.get(f'{task}_{c}', missing)[i]:.1f}" for c in classes]
            mean = columns.get(f"{task}_mean_f1", missing)[i]
            minutes = columns["train_s"][i] / 60
            rows.append([label, f"{iteration:.0f}", f"{minutes:.1f}", f"{mean:.1f}", *cells])
    table = Table(*header, title=f"{task} val F1 (%)")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if markdown is not None:
        from faceparse.utils.io import atomic_write_text

        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        atomic_write_text(markdown, "\n".join(lines) + "\n")
    console.print(f"[green]wrote[/green] {out}")
