"""``import faceparse as fp``: the front door names every entry point, lazily, and train/load_config
take a Config, a preset or a path, with overrides as strings or a mapping."""

from __future__ import annotations

import subprocess
import sys

import pytest

import faceparse as fp
from faceparse.runs.config import Config, load_config
from tiny import tiny_overrides

ENTRY_POINTS = (
    "face_parser",
    "build_model",
    "list_models",
    "train",
    "evaluate",
    "load_config",
    "load_checkpoint",
)


def test_import_is_lazy_and_every_entry_point_resolves():
    code = (
        "import sys, faceparse as fp\n"
        "assert 'torch' not in sys.modules, 'import faceparse imported torch'\n"
        f"for name in {ENTRY_POINTS!r}: assert callable(getattr(fp, name)), name\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_front_door_names_are_the_library_functions():
    from faceparse.engine.loop import train
    from faceparse.eval.run import evaluate_checkpoint
    from faceparse.models.registry import build_model

    assert fp.train is train and fp.evaluate is evaluate_checkpoint and fp.build_model is build_model
    assert set(ENTRY_POINTS) <= set(dir(fp)) and set(ENTRY_POINTS) <= set(fp.__all__)
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        fp.trian  # noqa: B018


def test_overrides_as_strings_dotted_mapping_or_nested_mapping_agree():
    as_strings = load_config("synthetic-fast", ["parsers.iterations=7", "data.crop=96"])
    dotted = load_config("synthetic-fast", {"parsers.iterations": 7, "data.crop": 96})
    nested = load_config("synthetic-fast", {"parsers": {"iterations": 7}, "data": {"crop": 96}})
    assert as_strings == dotted == nested and dotted.parsers.iterations == 7
    on_a_config = load_config(dotted, {"joint.lambda1": 0.0})  # a Config is a source too
    assert (
        on_a_config.joint.lambda1 == 0.0 and on_a_config.parsers.iterations == 7 and dotted.joint.lambda1 == 1
    )
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, "parsers.iterations=7")  # a bare string is not a list of overrides
    with pytest.raises(Exception, match="nonexistent"):
        load_config(None, {"parsers.nonexistent": 1})


def test_train_applies_overrides_to_a_config(tiny_data, tmp_path):
    cfg = load_config(None, tiny_overrides(tiny_data, tmp_path / "run", iterations=1))
    last = fp.train(cfg, "pretrain-rgb", overrides={"parsers.iterations": 2})
    assert last.name == "iter-0000002"  # the mapping override won over the Config's 1 iteration
    assert isinstance(cfg, Config) and cfg.parsers.iterations == 1  # the caller's Config is untouched
