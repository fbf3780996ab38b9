"""FaceParsingDataset.load from a PNG folder vs the same split packed (`faceparse pack`), in one process.

Run: OMP_NUM_THREADS=1 python benchmarks/packed_read.py PNG_FOLDER PACKED_FOLDER [SPLIT]

Each pass loads every sample of the split once (files in the page cache: a first pass warms it);
the best of three passes is reported, as samples per second on one core, and the ratio.
"""

import sys
import time

from faceparse.data.dataset import FaceParsingDataset


def samples_per_second(dataset: FaceParsingDataset, passes: int = 3) -> float:
    for i in range(len(dataset)):  # warm the page cache (and open the memory maps)
        dataset.load(i)
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset.load(i)
        best = min(best, time.perf_counter() - start)
    return len(dataset) / best


def main() -> None:
    folder, packed = sys.argv[1], sys.argv[2]
    split = sys.argv[3] if len(sys.argv) > 3 else "train"
    png = FaceParsingDataset(folder, split)
    npy = FaceParsingDataset(packed, split)
    height, width = png.load(0)["label"].shape
    rates = {"PNG folder": samples_per_second(png), "packed": samples_per_second(npy)}
    print(f"split {split!r}: {len(png)} samples at {width}x{height}, one core")
    print(f"{'source':<12} {'samples/s':>10} {'ms/sample':>10}")
    for name, rate in rates.items():
        print(f"{name:<12} {rate:>10.1f} {1000 / rate:>10.2f}")
    print(f"packed / PNG: {rates['packed'] / rates['PNG folder']:.0f}x")


if __name__ == "__main__":
    main()
