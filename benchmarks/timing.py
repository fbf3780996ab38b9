"""Timing helpers shared by the benchmarks.

The benchmarks run as scripts (``python benchmarks/NAME.py``), which puts this folder on ``sys.path``:
they import this module as ``timing``. Wall-clock times wait for a GPU's queue to drain (:func:`sync`);
settings compared in one process are timed in interleaved rounds so that a slow spell of a shared machine
hits every setting alike, and the median round is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import torch

CPU = torch.device("cpu")


def sync(device: torch.device = CPU) -> None:
    """Wait for ``device``'s queued work (a no-op on CPUs)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], steps: int, device: torch.device = CPU, warmup: int = 1) -> float:
    """Wall seconds per call of ``fn`` over ``steps`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def interleaved_medians(
    fns: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    steps: int = 1,
    device: torch.device = CPU,
    warmup: int = 1,
) -> dict[str, float]:
    """Median over ``rounds`` of each setting's seconds per call; every round times each setting in turn
    (``steps`` calls after ``warmup`` untimed ones)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn, steps, device, warmup))
    return {name: statistics.median(values) for name, values in times.items()}


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` counted by ``torch.utils.flop_counter`` (matmuls and convolutions,
    forward and backward; element-wise work such as an optimiser's update is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
