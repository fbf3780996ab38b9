"""`faceparse train`: pre-training, joint training (paper Eq. 4) or all stages, resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from faceparse.cli import app
from faceparse.cli.common import console, fail, friendly_errors

_STAGE_HELP = (
    "Stage to run: pretrain-rgb, pretrain-depth, pretrain-translator, joint, or all (the four in order; "
    "joint starts from the three pre-trained stages)."
)


@app.command("train")
@friendly_errors
def train_command(
    stage: str = typer.Argument("all", help=_STAGE_HELP, show_default=True),
    overrides: list[str] = typer.Argument(
        None,
        help="Config overrides as dotted key=value, e.g. data.root=data/synth run.devices=2 joint.lambda1=0.",
    ),
    config: str = typer.Option(
        "base",
        "--config",
        "-c",
        help="Config YAML file, or a preset name from configs/ (demo, celebamask-bisenet, ...).",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue each stage from its last checkpoint in run.out (finished stages are skipped).",
    ),
    print_config: bool = typer.Option(False, "--print-config", help="Print the merged config and exit."),
) -> None:
    """Train the parsers and the RGB→depth translator (paper §3.2, §4.2); checkpoints in run.out/<stage>/."""
    from faceparse.runs.config import load_config, to_yaml
    from faceparse.runs.stages import get_stage

    overrides = list(overrides or [])
    if "=" in stage:  # `faceparse train data.root=x` : no stage given, only overrides
        overrides.insert(0, stage)
        stage = "all"
    if stage != "all":
        try:
            get_stage(stage)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    try:
        cfg = load_config(config, overrides)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if print_config:
        typer.echo(to_yaml(cfg))
        return

    from faceparse.engine.loop import TrainingStopped, train
    from faceparse.utils.progress import progress_bar

    try:
        last = train(cfg, stage, resume=resume, progress=progress_bar if cfg.run.progress else None)
    except TrainingStopped as e:
        console.print(f"[red]stopped:[/red] {e}")
        raise typer.Exit(130 if "interrupted" in str(e) else 1) from None
    except ValueError as e:
        raise fail(e) from None
    console.print(f"[green]done[/green]: last checkpoint {Path(last)}")
