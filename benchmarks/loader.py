"""Samples per second that one CPU core delivers to the training device: the worker path vs the new paths.

Three ways to feed a training step, each measured in this process on one thread (CPU time of the
process, so per core and robust to other load), over the same samples, in alternating rounds:

* **worker path** (``data.augment_on=worker``): decode the PNGs, augment with OpenCV (bisenet preset:
  colour jitter, flip with left/right swap, scale 0.75-2 and a random crop), convert, collate;
* **PNG folder + device augmentation**: decode the PNGs and *draw* each sample's augmentation (the plan),
  collate; the augmentation itself runs on the training device (faceparse.data.device_augment);
* **packed + device augmentation**: read the sample from the memory-mapped packed dataset (`faceparse
  pack`), draw its plan, collate.

The device side is timed separately on the device in use (CUDA when present, else this CPU) and printed
with the rates: on a GPU it costs no CPU core; on a CPU it does, which is why ``data.augment_on: auto``
keeps the worker path on CPUs. The last line is ``speedup: <x>``: the best new path's samples/s per core
over the worker path's.

    python benchmarks/loader.py                      # 24 synthetic heads at 512², window 448
    python benchmarks/loader.py --data DIR --split train --window 448
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import default_collate

from faceparse.data.dataset import FaceParsingDataset
from faceparse.data.device_augment import DeviceAugment, collate_planned
from faceparse.data.transforms import build_transform
from faceparse.engine.sampling import SeededItems
from timing import timed

BATCH = 8


def synthetic_dataset(out: Path, num: int, size: int) -> Path:
    """``num`` synthetic heads at ``size``² (faceparse synth), all in the train split."""
    from faceparse.data.synth import generate_dataset

    generate_dataset(out, num, size=size, seed=0, workers=1)
    return out


def packed(root: Path, out: Path, split: str) -> Path:
    from faceparse.data.packed import pack_dataset

    pack_dataset(root, out, splits=[split], workers=1)
    return out


def cpu_seconds(fn: Callable[[], object]) -> float:
    """CPU seconds this process spends in ``fn`` (all its threads: set one torch thread for per-core)."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def feed(dataset: FaceParsingDataset, planned: bool, count: int) -> Callable[[], object]:
    """Load, augment or plan, and collate ``count`` samples in batches of :data:`BATCH`."""
    items = SeededItems(dataset, planned=planned)
    collate = collate_planned if planned else default_collate

    def run() -> None:
        for start in range(0, count, BATCH):
            indices = [k % len(dataset) for k in range(start, min(start + BATCH, count))]
            collate([items[(index, 1000 + index)] for index in indices])

    return run


def paths(
    root: Path, packed_root: Path, split: str, window: int
) -> dict[str, tuple[FaceParsingDataset, bool]]:
    def dataset(where: Path) -> FaceParsingDataset:
        scheme = FaceParsingDataset(where, split, depth_fraction=1.0).scheme
        transform = build_transform("bisenet", window, scheme, train=True)
        return FaceParsingDataset(where, split, depth_fraction=1.0, transform=transform)

    folder, pack = dataset(root), dataset(packed_root)
    return {
        "worker path: PNG decode + OpenCV augmentation": (folder, False),
        "PNG folder + device augmentation": (folder, True),
        "packed + device augmentation": (pack, True),
    }


def measure(ways: dict[str, tuple[FaceParsingDataset, bool]], count: int, rounds: int) -> dict[str, float]:
    """Samples per CPU-second of each way (median over alternating rounds)."""
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for dataset, planned in ways.values():  # warm-up: file cache, lazy imports, memory maps
        feed(dataset, planned, min(count, BATCH))()
    for _ in range(rounds):
        for name, (dataset, planned) in ways.items():
            rates[name].append(count / cpu_seconds(feed(dataset, planned, count)))
    return {name: statistics.median(values) for name, values in rates.items()}


def device_seconds_per_sample(dataset: FaceParsingDataset, window: int, device: torch.device) -> float:
    """Wall seconds per sample of the device augmentation on ``device`` (batches of :data:`BATCH`)."""
    items = SeededItems(dataset, planned=True)
    batch = collate_planned([items[(k % len(dataset), k)] for k in range(BATCH)])
    batch = {
        key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()
    }
    augment = DeviceAugment(dataset.scheme, (window, window))

    return timed(lambda: augment(batch), 3, device) / BATCH


def delivered_per_core(data: Path | None, scratch: Path, smoke: bool = False, split: str = "train") -> float:
    """Samples/s per core of the best host-side path (packed + drawn plans): benchmarks/gpu.py's headroom."""
    size = 96 if smoke else 512
    root = data or synthetic_dataset(scratch / "synth", 8 if smoke else 16, size)
    packed_root = packed(root, scratch / "packed", split)
    window = int(size * 0.875)
    ways = paths(root, packed_root, split, window)
    best = "packed + device augmentation"
    return measure({best: ways[best]}, 16 if smoke else 64, 1)[best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a dataset folder (default: synthetic heads)")
    parser.add_argument("--split", default="train", help="its split to read (default train)")
    parser.add_argument("--num", type=int, default=24, help="synthetic heads to generate (default 24)")
    parser.add_argument("--size", type=int, default=512, help="synthetic image side (default 512)")
    parser.add_argument("--window", type=int, default=448, help="training window (default 448, paper §4.2)")
    parser.add_argument("--count", type=int, default=48, help="samples fed per round (default 48)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    with tempfile.TemporaryDirectory() as scratch:
        root = args.data or synthetic_dataset(Path(scratch) / "synth", args.num, args.size)
        packed_root = packed(root, Path(scratch) / "packed", args.split)
        ways = paths(root, packed_root, args.split, args.window)
        rates = measure(ways, args.count, args.rounds)
        pack = ways["packed + device augmentation"][0]
        device_s = device_seconds_per_sample(pack, args.window, device)
        height, width = pack.load(0)["label"].shape

    worker = rates["worker path: PNG decode + OpenCV augmentation"]
    print(
        f"# loader benchmark: {height}×{width} sources → {args.window}² windows, batch {BATCH}, one thread, "
    )
    print(
        f"# torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        "samples per CPU-second (= per core)"
    )
    print()
    print("| path (host side, one core) | samples/s per core | vs worker path |")
    print("|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {rate / worker:.1f}× |")
    print()
    print(f"# device augmentation on {device.type}: {1e3 * device_s:.1f} ms per sample "
          f"({1 / device_s:.0f} samples/s)")  # fmt: skip
    if device.type == "cpu":
        end_to_end = 1 / (1 / rates["packed + device augmentation"] + device_s)
        print(
            f"# with the device being this CPU, packed + device augmentation costs {end_to_end:.1f} "
            f"samples/s per core end to end ({end_to_end / worker:.2f}× the worker path): "
            "on CPUs the worker path stays"
        )
    best = max(
        rate for name, rate in rates.items() if name != "worker path: PNG decode + OpenCV augmentation"
    )
    print(f"speedup: {best / worker:.1f}")


if __name__ == "__main__":
    main()
