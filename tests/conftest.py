"""Shared fixtures. The material itself lives in ``tests/tiny.py`` as plain functions (importable from
module-scoped fixtures, parametrisations and subprocess scripts); tests/README.md says which to use."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `from tiny import ...` in any test or subprocess script

import tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only tiny learnable dataset shared by the whole session: 10 disc heads at 32², ``train`` =
    8, ``val`` = 2 (tiny.disc_dataset). Tests that write into a dataset must make their own."""
    return tiny.disc_dataset(tmp_path_factory.mktemp("tiny-data") / "tiny")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder whose joint checkpoint holds both 64² parsers and the translator (random weights,
    tiny.engine_checkpoint): what the inference, video, metric-depth and web-page tests load."""
    root = tmp_path_factory.mktemp("run")
    tiny.engine_checkpoint(root)
    return root
