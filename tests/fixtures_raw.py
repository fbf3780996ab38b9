"""Tiny raw dataset trees in the EXACT official formats, built in temporary folders (no dataset files
are committed). Used by the converter tests and ``benchmarks/prepare.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# --- CelebAMask-HQ ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartMask:
    """A rectangular part mask: rows r0:r1, cols c0:c1 set to ``value`` (gray level) in PIL ``mode``."""

    mode: str
    rect: tuple[int, int, int, int]
    value: int = 255


def save_mask(path: Path, m: PartMask, size: int) -> None:
    gray = np.zeros((size, size), dtype=np.uint8)
    r0, r1, c0, c1 = m.rect
    gray[r0:r1, c0:c1] = m.value
    path.parent.mkdir(parents=True, exist_ok=True)
    if m.mode == "RGB":  # the official files: white part on black, RGB
        Image.fromarray(np.stack([gray] * 3, axis=2)).save(path)
    elif m.mode == "RGBA":
        rgba = np.stack([gray, gray, gray, np.full_like(gray, 255)], axis=2)
        Image.fromarray(rgba).save(path)
    elif m.mode == "1":
        Image.fromarray(gray > 127).convert("1").save(path)
    elif m.mode == "L":
        Image.fromarray(gray).save(path)
    elif m.mode == "P":
        Image.fromarray(np.stack([gray] * 3, axis=2)).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    else:
        raise ValueError(m.mode)


# Sample 0: every mask mode, overlaps whose order matters, a below-threshold gray level, dropped parts.
CELEBA_SAMPLE0: dict[str, PartMask] = {
    "skin": PartMask("RGB", (4, 28, 4, 28)),
    "nose": PartMask("L", (12, 20, 13, 19)),
    "eye_g": PartMask("RGBA", (9, 13, 4, 28)),  # glasses over both eyes: the eyes are painted later
    "l_eye": PartMask("1", (10, 12, 18, 24)),  # subject's left = image right
    "r_eye": PartMask("P", (10, 12, 8, 14)),
    "mouth": PartMask("L", (22, 24, 12, 20), value=100),  # gray 100 <= 127: NOT part of the mask
    "u_lip": PartMask("L", (21, 23, 12, 20), value=200),
    "hair": PartMask("1", (0, 8, 0, 32)),  # overwrites the skin's top rows
    "hat": PartMask("RGBA", (0, 3, 0, 32)),  # overwrites hair in celebamask19; dropped in celebamask13
    "neck": PartMask("L", (28, 32, 10, 22)),
    "cloth": PartMask("RGB", (30, 32, 0, 32)),  # overwrites the neck's bottom rows
}
# Samples 1..4: a plain face, one mask per sample (RGB mode like the official files).
CELEBA_PLAIN: dict[str, PartMask] = {
    "skin": PartMask("RGB", (6, 26, 6, 26)),
    "l_brow": PartMask("RGB", (8, 9, 17, 24)),
    "r_brow": PartMask("RGB", (8, 9, 8, 15)),
    "l_ear": PartMask("L", (12, 18, 26, 28)),
    "r_ear": PartMask("L", (12, 18, 4, 6)),
    "l_lip": PartMask("RGB", (23, 25, 12, 20)),
}
CELEBA_SPLITS = {0: "train", 1: "train", 2: "val", 3: "test", 4: "test"}


def make_celebamask(
    root: Path,
    *,
    size: int = 32,
    image_size: int = 64,
    bad: bool = False,
    plain: dict | None = None,
    n: int = 5,
) -> Path:
    """Raw CelebAMask-HQ tree with ``n`` images (ids 0..n-1; split = CELEBA_SPLITS or train).

    ``bad`` adds: id 5 (train) whose image is missing; id 3's image truncated; id 4's nose mask at the
    wrong size; and a mapping row (id 6) whose CelebA file is not in the partition.
    """
    rng = np.random.default_rng(0)
    (root / "CelebA-HQ-img").mkdir(parents=True, exist_ok=True)
    mapping = ["idx orig_idx orig_file"]
    partition = []
    code = {"train": 0, "val": 1, "test": 2}
    ids = list(range(n)) + ([5] if bad else [])
    for idx in ids:
        orig = f"{idx + 1:06d}.jpg"
        mapping.append(f"{idx} {idx + 1000} {orig}")
        partition.append(f"{orig} {code[CELEBA_SPLITS.get(idx, 'train')]}")
        if idx == 5 and bad:
            continue  # mapping row pointing to a missing image
        rgb = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / "CelebA-HQ-img" / f"{idx}.jpg", quality=95)
        parts = CELEBA_SAMPLE0 if idx == 0 else (plain or CELEBA_PLAIN)
        for part, m in parts.items():
            save_mask(root / "CelebAMask-HQ-mask-anno" / str(idx // 2000) / f"{idx:05d}_{part}.png", m, size)
    if bad:
        img3 = root / "CelebA-HQ-img" / "3.jpg"
        img3.write_bytes(img3.read_bytes()[: len(img3.read_bytes()) // 2])
        save_mask(
            root / "CelebAMask-HQ-mask-anno" / "0" / "00004_nose.png", PartMask("L", (1, 2, 1, 2)), size * 2
        )
        mapping.append("6 1006 999999.jpg")
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root


# --- LaPa --------------------------------------------------------------------------------------------

LAPA_SIZES = {"train": [(40, 30), (52, 48)], "val": [(36, 36)], "test": [(44, 60)]}  # (width, height)


def make_lapa(root: Path, *, bad: bool = False) -> dict[str, np.ndarray]:
    """Raw LaPa tree at varying native sizes. Returns {id: expected label}.

    ``bad``: an extra test image whose label has the wrong size.
    """
    rng = np.random.default_rng(1)
    labels = {}
    for split, sizes in LAPA_SIZES.items():
        for k, (w, h) in enumerate(sizes):
            sid = f"{split}_{k:03d}"
            _lapa_sample(root, split, sid, w, h, rng, labels)
    if bad:
        _lapa_sample(root, "test", "test_bad", 30, 30, rng, {}, label_size=(31, 30))
    return labels


def _lapa_sample(root, split, sid, w, h, rng, labels, label_size=None) -> None:
    for d in ("images", "labels", "landmarks"):
        (root / split / d).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
        root / split / "images" / f"{sid}.jpg"
    )
    lw, lh = label_size or (w, h)
    label = rng.integers(0, 11, (lh, lw), dtype=np.uint8)
    Image.fromarray(label).save(root / split / "labels" / f"{sid}.png")
    pts = rng.uniform(0, min(w, h), (106, 2))
    (root / split / "landmarks" / f"{sid}.txt").write_text(
        "106\n" + "".join(f"{x:.3f} {y:.3f}\n" for x, y in pts)
    )
    labels[sid] = label


# --- Helen -------------------------------------------------------------------------------------------

HELEN_LISTS = {
    "exemplars.txt": ["100032540_1", "10405146_1"],
    "tuning.txt": ["1051618982_1"],
    "testing.txt": ["107635070_1"],
}


def make_helen(root: Path, *, size: tuple[int, int] = (40, 32)) -> dict[str, np.ndarray]:
    """Raw Helen tree with soft class maps. Returns {name: expected argmax label (ties → lowest id)}."""
    rng = np.random.default_rng(2)
    w, h = size
    expected = {}
    root.mkdir(parents=True, exist_ok=True)
    for list_name, names in HELEN_LISTS.items():
        (root / list_name).write_text("".join(f"{i + 1} , {n}\n" for i, n in enumerate(names)))
        for name in names:
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                root / "images" / f"{name}.jpg"
            )
            maps = np.zeros((11, h, w), dtype=np.uint8)
            winner = rng.integers(0, 11, (h, w))
            for k in range(11):  # soft maps: the winner gets 200, the others a little mass
                maps[k] = np.where(winner == k, 200, rng.integers(0, 90, (h, w)))
            maps[:, :4, :4] = 0  # all zero → background (id 0)
            maps[3, 4:6, :] = 150  # ties between ids 3 and 7 → 3 (the lowest id)
            maps[7, 4:6, :] = 150
            maps[[k for k in range(11) if k not in (3, 7)], 4:6, :] = 10
            maps[10, h - 4 :, :] = 255  # a hair band at the bottom
            exp = winner.astype(np.uint8)
            exp[:4, :4] = 0
            exp[4:6, :] = 3
            exp[h - 4 :, :] = 10
            expected[name] = exp
            d = root / "labels" / name
            d.mkdir(parents=True, exist_ok=True)
            for k in range(11):
                Image.fromarray(maps[k]).save(d / f"{name}_lbl{k:02d}.png")
    return expected
