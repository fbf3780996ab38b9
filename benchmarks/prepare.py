"""Throughput of the raw-dataset converters and of the offline depth backend.

Builds raw trees in the exact official formats at realistic sizes in a temporary folder (CelebAMask-HQ:
1024² JPEG photos + 512² part masks; LaPa: ~500² JPEGs + labels + 106 landmarks; Helen: ~800×600 JPEGs
+ 11 soft maps), converts them with 1 and 2 worker processes, and times MediaPipe depth estimation
on the astronaut photo when mediapipe is installed. Prints one table (samples/s and the parallel
speed-up measured in the same run).

    .venv/bin/python benchmarks/prepare.py [--n 48]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from faceparse.data.convert import convert_celebamask, convert_helen, convert_lapa  # noqa: E402
from fixtures_raw import CELEBA_PLAIN, PartMask, make_celebamask, make_helen, make_lapa  # noqa: E402


def photo(w: int, h: int, seed: int) -> np.ndarray:
    """A photo-like image (the astronaut, shifted per seed): JPEG sizes like real faces, unlike noise."""
    from skimage import data

    img = Image.fromarray(data.astronaut()).resize((w, h), Image.Resampling.BILINEAR)
    return np.roll(np.asarray(img), seed * 7, axis=1)


def replace_images(folder: Path, pattern: str) -> None:
    for k, p in enumerate(sorted(folder.glob(pattern))):
        with Image.open(p) as img:
            w, h = img.size
        Image.fromarray(photo(w, h, k)).save(p, quality=95)


def celebamask_tree(root: Path, n: int) -> Path:
    scaled = {k: PartMask(m.mode, tuple(v * 16 for v in m.rect), m.value) for k, m in CELEBA_PLAIN.items()}
    make_celebamask(root, size=512, image_size=1024, n=n, plain=scaled)
    replace_images(root / "CelebA-HQ-img", "*.jpg")
    return root


def lapa_tree(root: Path, n: int) -> Path:
    import fixtures_raw

    fixtures_raw.LAPA_SIZES.update(
        {"train": [(500 + 4 * k, 480 + 2 * k) for k in range(n)], "val": [], "test": []}
    )
    make_lapa(root)
    replace_images(root / "train" / "images", "*.jpg")
    return root


def helen_tree(root: Path, n: int) -> Path:
    import fixtures_raw

    fixtures_raw.HELEN_LISTS.update(
        {"exemplars.txt": [f"{1000 + k}_1" for k in range(n)], "tuning.txt": [], "testing.txt": []}
    )
    make_helen(root, size=(800, 600))
    return root


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48, help="samples per dataset")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = {
            "CelebAMask-HQ (1024² jpg → 512²)": (celebamask_tree, convert_celebamask, {"size": 512}),
            "LaPa (~500² native)": (lapa_tree, convert_lapa, {}),
            "Helen (800×600, 11 soft maps)": (helen_tree, convert_helen, {}),
        }
        for name, (build, convert, kw) in cases.items():
            raw = build(tmp / f"raw_{len(rows)}", args.n)
            secs = {}
            for workers in (1, 2):
                out = tmp / f"out_{len(rows)}_{workers}"
                run = functools.partial(convert, raw, out, workers=workers, **kw)
                secs[workers] = timed(run)
                resume = timed(run)  # every sample already there: the resume check only
            rows.append((name, args.n / secs[1], args.n / secs[2], secs[1] / secs[2], args.n / resume))
        depth = depth_rate(tmp, min(args.n, 12))
    print(f"{'converter':38s} {'1 worker':>10s} {'2 workers':>10s} {'speed-up':>9s} {'resume':>10s}")
    for name, r1, r2, up, res in rows:
        print(f"{name:38s} {r1:8.1f}/s {r2:8.1f}/s {up:8.2f}x {res:8.0f}/s")
    if depth is not None:
        print(
            f"{'mediapipe depth (astronaut 512²)':38s} {depth:8.2f}/s   (images/s, 1 process, after warm-up)"
        )
    else:
        print("mediapipe not installed: depth estimation not timed (make depth-extra)")


def depth_rate(tmp: Path, n: int) -> float | None:
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return None
    from skimage import data

    from faceparse.depth.estimate import estimate_depth
    from faceparse.utils.facemesh import FaceMeshEstimator

    rgb = data.astronaut()
    with FaceMeshEstimator() as est:
        estimate_depth(rgb, est)  # warm-up: model load, Embree BVH
        t = time.perf_counter()
        for k in range(n):
            estimate_depth(np.roll(rgb, k, axis=1), est)
        return n / (time.perf_counter() - t)


if __name__ == "__main__":
    main()
