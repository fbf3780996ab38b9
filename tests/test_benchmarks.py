"""The data-path and GPU benchmarks run on a CPU at tiny sizes and print what they promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str, timeout: int = 240) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_loader_benchmark_compares_the_three_paths_and_ends_with_the_speedup():
    out = _run("loader.py", "--num", "6", "--size", "64", "--window", "56", "--count", "8", "--rounds", "1")
    for path in ("worker path", "PNG folder + device augmentation", "packed + device augmentation"):
        assert path in out
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"speedup: \d+\.\d", last), last
    assert float(last.split()[1]) > 0


def test_gpu_benchmark_cpu_smoke_prints_every_stage():
    out = _run("gpu.py", "--cpu-smoke")
    rows = [line for line in out.splitlines() if line.startswith("| pretrain") or line.startswith("| joint")]
    assert [row.split("|")[1].strip() for row in rows] == [
        "pretrain-rgb",
        "pretrain-depth",
        "pretrain-translator",
        "joint",
    ]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[3]) > 0  # images/s
        assert float(cells[4]) > 0  # GFLOP per image, from the FLOP counter
        assert cells[5].endswith("%")
