"""The import layering (CONTRIBUTING.md): a module imports only from its own package or a lower layer.

Every ``import`` / ``from ... import`` in src/faceparse counts, at module level, inside functions (lazy
imports) and under ``if TYPE_CHECKING``. The package's ``__init__`` front door is exempt: it names the
public entry points of every layer and imports them lazily.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "faceparse"

# Lower number = lower layer. Packages of one layer do not import each other either.
LAYERS = {
    "labels": 0,
    "utils": 0,
    "data": 1,
    "depth": 2,
    "models": 2,
    "losses": 3,  # computed on what models return (models.ParserOutput)
    "runs": 4,
    "eval": 5,
    "inference": 5,
    "engine": 6,
    "workflows": 7,
    "serve": 7,  # the web page: parses uploads with inference
    "cli": 8,
}


def package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def faceparse_imports(path: Path) -> list[tuple[str, int]]:
    """(imported top-level faceparse package, line) for every import of a faceparse module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "faceparse" and len(parts) > 1:
                found.append((parts[1], node.lineno))
    return found


def violations() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "__init__.py":
            continue  # the front door
        package = package_of(path)
        assert package in LAYERS, f"{path.relative_to(SRC)}: package {package!r} has no layer in LAYERS"
        for target, line in faceparse_imports(path):
            if target == package:
                continue
            assert target in LAYERS, f"{path.relative_to(SRC)}:{line} imports unknown package {target!r}"
            if LAYERS[target] >= LAYERS[package]:
                bad.append(
                    f"{path.relative_to(SRC)}:{line}: {package} (layer {LAYERS[package]}) imports "
                    f"{target} (layer {LAYERS[target]})"
                )
    return bad


def test_no_module_imports_its_own_layer_or_above():
    assert violations() == []


def test_every_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    packages |= {p.stem for p in SRC.glob("*.py") if p.name != "__init__.py"}
    assert packages == set(LAYERS)


@pytest.mark.parametrize("low", ["utils", "labels", "data", "depth", "models", "losses"])
def test_lower_layers_never_import_the_engine_eval_inference_workflows_or_cli(low):
    high = {"engine", "eval", "inference", "workflows", "cli"}
    files = [SRC / f"{low}.py"] if (SRC / f"{low}.py").is_file() else sorted((SRC / low).rglob("*.py"))
    imported = {target for path in files for target, _ in faceparse_imports(path)}
    assert not imported & high


def test_the_checker_catches_an_upward_import(tmp_path, monkeypatch):
    """The walk is not vacuous: an upward import written into a copy of the tree is reported."""
    import shutil

    tree = tmp_path / "faceparse"
    shutil.copytree(SRC, tree, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "data" / "oops.py").write_text("def f():\n    from faceparse.engine.loop import train\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tree)
    assert "data/oops.py:2: data (layer 1) imports engine (layer 6)" in violations()
