"""The ``faceparse`` command line: a thin typer layer over library functions.

Each area registers its commands in its own module (``cli/data.py``, ``cli/train.py``, ...) so that
every command is a function a Python user can call too.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="faceparse",
    help="Face parsing from RGB and depth (Lee, Bhattarai, Kim, CVPRW 2021): "
    "data, training, evaluation, inference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """Face parsing from RGB and depth: synthetic data, dataset tools, training, evaluation, inference."""


# Modules that add commands to `app`; each keeps its heavy imports (torch, cv2, trimesh) inside commands.
_COMMAND_MODULES = (
    "info", "synth", "data", "models", "train", "evaluate", "prepare", "depth", "inference", "run", "serve",
)  # fmt: skip


def _register() -> None:
    for name in _COMMAND_MODULES:  # a module that fails to import is a bug: let it raise
        importlib.import_module(f"faceparse.cli.{name}")


_register()


def main() -> None:
    app()
