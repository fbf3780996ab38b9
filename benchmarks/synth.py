"""Throughput of the synthetic generator (`faceparse synth`).

Reports samples/s for in-process dataset generation with all cores at 128² and 512² (files written),
single-process generation without IO as a same-run baseline, and the wall-clock of the CLI for 256
samples at 128² including interpreter start-up. Targets on a 2-core machine: ≥ 50/s at 128² (≥ 40/s for
the CLI incl. start-up) and ≥ 4/s at 512². On a shared machine wall-clock rates drop with the load, so
CPU seconds per sample are reported too (``workers / cpu`` = the rate the same cores would give if idle).

    .venv/bin/python benchmarks/synth.py [--num128 256] [--num512 32] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faceparse.data.synth import generate_dataset, generate_sample


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the worker pool), user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _dataset_rate(num: int, size: int, workers: int) -> tuple[float, float]:
    """(samples/s wall-clock, CPU seconds per sample incl. PNG writing and process overhead)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        generate_dataset(Path(tmp) / "ds", num, size=size, seed=0, workers=workers)
        return num / (time.perf_counter() - t0), (_cpu_seconds() - c0) / num


def _single_rate(num: int, size: int) -> tuple[float, float]:
    generate_sample(10_000, size, 0)  # warm-up (imports, embree)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(num):
        generate_sample(i, size, 0)
    return num / (time.perf_counter() - t0), (time.process_time() - c0) / num


def _cli_seconds(num: int, size: int, workers: int) -> float:
    exe = Path(sys.executable).with_name("faceparse")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(exe),
            "synth",
            "--out",
            f"{tmp}/cli",
            "--num",
            str(num),
            "--size",
            str(size),
            "--seed",
            "0",
        ]
        cmd += ["--workers", str(workers)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num128", type=int, default=256)
    ap.add_argument("--num512", type=int, default=32)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rows = []
    for size, num in ((128, args.num128), (512, args.num512)):
        single, cpu = _single_rate(max(4, num // 8), size)
        rows.append(
            (f"generate_sample {size}² (1 process, no IO)", single, f"{cpu * 1000:.0f} ms CPU/sample")
        )
        rate, cpu = _dataset_rate(num, size, args.workers)
        note = f"x{rate / single:.2f} vs 1 process; {cpu * 1000:.0f} ms CPU/sample"
        note += f" -> {args.workers / cpu:.0f}/s if idle"
        rows.append((f"generate_dataset {size}² ({args.workers} workers, {num} files)", rate, note))
    c0 = _cpu_seconds()
    secs = _cli_seconds(args.num128, 128, args.workers)
    cpu = _cpu_seconds() - c0
    note = f"{secs:.1f} s wall, {cpu:.1f} s CPU -> {args.num128 * args.workers / cpu:.0f}/s if idle"
    rows.append((f"CLI faceparse synth {args.num128} @128² incl. start-up", args.num128 / secs, note))
    print(f"{'benchmark':58s} {'samples/s':>10s}  note")
    for name, rate, note in rows:
        print(f"{name:58s} {rate:10.1f}  {note}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
