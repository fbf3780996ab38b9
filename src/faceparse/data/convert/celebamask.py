"""CelebAMask-HQ → faceparse layout (FACTS §2, paper §3.1).

Raw layout::

    CelebA-HQ-img/{id}.jpg                                   1024×1024
    CelebAMask-HQ-mask-anno/{id // 2000}/{id:05d}_{part}.png  512×512, one file per part present
    CelebA-HQ-to-CelebA-mapping.txt                          "idx orig_idx orig_file" (header line first)
    list_eval_partition.txt (from CelebA)                    "<orig_file> <0|1|2>" = train/val/test

Part masks are painted in the official order (``labels.CELEBAMASK_PARTS``; later parts overwrite
earlier ones). ``celebamask13`` paints only the parts the head model renders (``CELEBAMASK13_RETAINED``):
eyeglasses, hat, earring, necklace, neck and cloth become background where no retained part lies.
Masks are read in whatever PNG mode they come in (RGB, RGBA, L, 1-bit, palette) and thresholded at
``> 127`` on their gray level (max over colour channels) — not the ``== 225`` idiom, which silently
empties non-RGB masks (FACTS §2, §5).

Images are resized to the label size with PIL's Lanczos filter (1024 → 512 by default) and stored as
JPEG quality 95 (``rgb_ext=".png"`` stores lossless PNG instead).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from faceparse.data.convert.common import (
    ConvertReport,
    Job,
    Outcome,
    Provenance,
    RunOptions,
    check_options,
    convert_and_finish,
    refuse_discarded,
)
from faceparse.data.format import SPLITS, _open, id_problem, write_label, write_rgb
from faceparse.labels import CELEBAMASK13_RETAINED, CELEBAMASK_PARTS, get_scheme
from faceparse.utils.io import DataError, read_text

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

IMG_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
MAPPING = "CelebA-HQ-to-CelebA-mapping.txt"
PARTITION = "list_eval_partition.txt"
SCHEMES = ("celebamask13", "celebamask19")
EXPECTED_COUNTS = {"train": 24_183, "val": 2_993, "test": 2_824}  # FACTS §2 (Table 1 misprints 2,284)


def read_mapping(path: Path) -> list[tuple[int, int, str]]:
    """``CelebA-HQ-to-CelebA-mapping.txt`` → [(line number, hq_idx, orig_file)] in file order.

    ``orig_file`` is only looked up in the partition, never opened; :func:`convert_celebamask` still
    reports and skips a row whose name is not a plain file name, like every list converter."""
    if not path.is_file():
        raise DataError(path, "mapping file not found (it ships with CelebAMask-HQ)")
    rows = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0] == "idx":
            continue
        if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit()):
            raise DataError(path, f"line {n}: expected 'idx orig_idx orig_file', got {line!r}")
        rows.append((n, int(parts[0]), parts[2]))
    if not rows:
        raise DataError(path, "no mapping rows")
    return rows


def read_partition(path: Path) -> dict[str, str]:
    """CelebA's ``list_eval_partition.txt`` → {orig_file: split} (the names are lookup keys only)."""
    if not path.is_file():
        raise DataError(
            path, "CelebA partition file not found (download list_eval_partition.txt from CelebA)"
        )
    names = {"0": "train", "1": "val", "2": "test"}
    out = {}
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in names:
            raise DataError(path, f"line {n}: expected '<file> <0|1|2>', got {line!r}")
        out[parts[0]] = names[parts[1]]
    return out


def read_part_mask(path: Path) -> np.ndarray:
    """One part mask in any PNG mode → (H, W) bool, gray level > 127."""
    img = _open(path)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img)
        gray = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])  # 20× faster than .max(axis=2)
    elif img.mode == "LA":
        gray = np.asarray(img)[..., 0]
    elif img.mode in ("I", "I;16", "I;16B", "F"):
        arr = np.asarray(img).astype(np.float64)
        gray = arr * (255.0 / 65535.0) if arr.max(initial=0) > 255 else arr
    else:  # "L", "1", ...
        gray = np.asarray(img.convert("L"))
    return gray > 127


def part_ids(scheme: str) -> list[tuple[str, int]]:
    """(part, id) to paint, in the official merge order, for ``scheme``."""
    s = get_scheme(scheme)
    keep = CELEBAMASK_PARTS if scheme == "celebamask19" else CELEBAMASK13_RETAINED
    return [(p, s.index(p)) for p in CELEBAMASK_PARTS if p in keep]


def mask_path(root: Path, idx: int, part: str) -> Path:
    return root / MASK_DIR / str(idx // 2000) / f"{idx:05d}_{part}.png"


def build_label(root: Path, idx: int, scheme: str, size: int) -> np.ndarray:
    """Paint the part masks of image ``idx`` into one (size, size) uint8 id map."""
    label = np.zeros((size, size), dtype=np.uint8)
    for part, cid in part_ids(scheme):
        p = mask_path(root, idx, part)
        if not p.is_file():
            continue  # a part absent from the image has no file
        m = read_part_mask(p)
        if m.shape != (size, size):
            raise DataError(p, f"mask is {m.shape[1]}×{m.shape[0]}, expected {size}×{size}")
        label[m] = cid
    return label


def convert_one(job: Job) -> Outcome:
    root, idx, size = Path(job.params["root"]), job.params["idx"], job.params["size"]
    img = _open(root / IMG_DIR / f"{idx}.jpg").convert("RGB")
    label = build_label(root, idx, job.params["scheme"], size)  # (size, size) before any write
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    rgb_out, label_out = job.outputs
    write_rgb(rgb_out, np.asarray(img))
    write_label(label_out, label)
    return Outcome(job.sid, job.split, "written", size=(size, size))


def convert_celebamask(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    scheme: str = "celebamask13",
    size: int = 512,
    partition: str | os.PathLike | None = None,
    workers: int | None = None,
    strict: bool = False,
    overwrite: bool = False,
    rgb_ext: str = ".jpg",
    on_progress: OnProgress | None = None,
) -> ConvertReport:
    """Convert a raw CelebAMask-HQ folder into a faceparse dataset at ``out``; see the module docstring."""
    root, out = Path(root), Path(out)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if not (root / IMG_DIR).is_dir():
        raise DataError(root / IMG_DIR, "image folder not found; --root must be the CelebAMask-HQ folder")
    options = {"scheme": scheme, "size": size, "rgb_ext": rgb_ext}
    check_options(out, "celebamask-hq", options, overwrite)
    mapping = read_mapping(root / MAPPING)
    part_file = Path(partition) if partition is not None else root / PARTITION
    split_of = read_partition(part_file)

    report = ConvertReport(f"CelebAMask-HQ → {out} ({scheme}, {size}²)")
    jobs = []
    for line, idx, orig in mapping:
        split = split_of.get(orig)
        sid = str(idx)
        problem = id_problem(orig)
        if problem is not None:
            report.discarded.append(
                Outcome(
                    sid,
                    "unassigned",
                    "bad",
                    path=str(root / MAPPING),
                    problem=f"line {line}: CelebA file {orig!r} is not a plain file name: {problem}",
                )
            )
            continue
        if split is None:
            report.discarded.append(
                Outcome(
                    sid,
                    "unassigned",
                    "bad",
                    path=str(part_file),
                    problem=f"{orig} (CelebA file of image {idx}) is not in the partition",
                )
            )
            continue
        outputs = (out / "rgb" / f"{sid}{rgb_ext}", out / "label" / f"{sid}.png")
        jobs.append(
            Job(sid, split, out, outputs, {"root": str(root), "idx": idx, "size": size, "scheme": scheme})
        )
    jobs.sort(key=lambda j: (SPLITS.index(j.split), j.params["idx"]))
    refuse_discarded(report, strict)

    provenance = Provenance("CelebAMask-HQ", scheme, "celebamask-hq", options)
    run = RunOptions(workers, strict, overwrite, on_progress)
    return convert_and_finish(jobs, convert_one, report, out, root, provenance, run)
