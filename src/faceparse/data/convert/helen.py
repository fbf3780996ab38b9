"""Helen (SmithCVPR2013 face-parsing version) → faceparse layout (FACTS §2, paper §3.1).

Raw layout: ``images/<name>.jpg``; ``labels/<name>/<name>_lbl00.png … _lbl10.png``, one grayscale
0–255 map per class (the ``helen11`` ids, LaPa's); list files ``exemplars.txt`` (train, 2,000),
``tuning.txt`` (val, 230), ``testing.txt`` (test, 100) with lines like ``1 , 100032540_1``.

The class maps can be soft. The id map is the argmax over the 11 maps, as in the literature; ties go
to the LOWEST id (``numpy.argmax`` returns the first maximum), so a pixel where every map is 0 is
background.

``drop_hair`` builds Helen-D's labels (paper §3.1: Helen's hair annotation is poor, so hair labels and
hair depth are discarded): hair becomes background, and the original hair region is kept as
``dropped/<name>.png`` (0/255) so that depth importers clear depth there too; depth already present
in the output folder is cleared on the spot.
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
    accept_id,
    check_options,
    convert_and_finish,
    copy_file,
    refuse_discarded,
)
from faceparse.data.format import _open, read_depth, write_depth, write_label
from faceparse.labels import get_scheme
from faceparse.utils.io import DataError, atomic_save, read_text

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

LISTS = {"train": "exemplars.txt", "val": "tuning.txt", "test": "testing.txt"}
NUM_CLASSES = 11
HAIR = get_scheme("helen11").index("hair")
DROPPED_DIR = "dropped"


def read_list(path: Path) -> list[tuple[int, str]]:
    """A Helen list file (``index , name`` per line) → (line number, name) per entry.

    Names are not checked here: :func:`convert_helen` reports and skips one that is not a plain file
    stem (:func:`faceparse.data.format.id_problem`)."""
    if not path.is_file():
        raise DataError(path, "Helen list file not found")
    entries = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not parts[1]:
            raise DataError(path, f"line {n}: expected 'index , name', got {line!r}")
        entries.append((n, parts[1]))
    return entries


def soft_maps_to_label(maps: np.ndarray) -> np.ndarray:
    """(11, H, W) class maps → (H, W) uint8 ids; argmax with ties to the lowest id."""
    return np.argmax(maps, axis=0).astype(np.uint8)


def read_soft_maps(label_dir: Path, name: str, size: tuple[int, int]) -> np.ndarray:
    """The 11 ``<name>_lblNN.png`` maps → (11, H, W) uint8."""
    maps = np.empty((NUM_CLASSES, size[1], size[0]), dtype=np.uint8)
    for k in range(NUM_CLASSES):
        p = label_dir / f"{name}_lbl{k:02d}.png"
        m = np.asarray(_open(p).convert("L"))
        if m.shape != maps.shape[1:]:
            raise DataError(p, f"map is {m.shape[1]}×{m.shape[0]}, image is {size[0]}×{size[1]}")
        maps[k] = m
    return maps


def dropped_mask_path(out: Path, sid: str) -> Path:
    return out / DROPPED_DIR / f"{sid}.png"


def convert_one(job: Job) -> Outcome:
    root, name = Path(job.params["root"]), job.sid
    src_img = root / "images" / f"{name}.jpg"
    img = _open(src_img)
    label = soft_maps_to_label(read_soft_maps(root / "labels" / name, name, img.size))
    if job.params["drop_hair"]:
        hair = label == HAIR
        label[hair] = 0
        mask = np.where(hair, 255, 0).astype(np.uint8)
        atomic_save(dropped_mask_path(job.out, name), lambda p: Image.fromarray(mask).save(p, format="PNG"))
        depth_path = job.out / "depth" / f"{name}.png"
        if depth_path.is_file():
            depth = read_depth(depth_path)
            if depth.shape == hair.shape:
                depth[hair] = 0.0
                write_depth(depth_path, depth)
    rgb_out, label_out = job.outputs[-2:]
    copy_file(src_img, rgb_out)
    write_label(label_out, label)
    return Outcome(job.sid, job.split, "written", size=img.size)


def convert_helen(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    drop_hair: bool = False,
    workers: int | None = None,
    strict: bool = False,
    overwrite: bool = False,
    on_progress: OnProgress | None = None,
) -> ConvertReport:
    """Convert a raw Helen folder into a faceparse dataset (Helen-D labels with ``drop_hair``)."""
    root, out = Path(root), Path(out)
    if not (root / "images").is_dir():
        raise DataError(root / "images", "Helen image folder not found")
    options = {"drop_hair": drop_hair}
    check_options(out, "helen", options, overwrite)
    report = ConvertReport(f"Helen → {out}{' (hair dropped: Helen-D)' if drop_hair else ''}")
    jobs = []
    for split, list_name in LISTS.items():
        for line, name in read_list(root / list_name):
            if not accept_id(report, name, split, root / list_name, f"line {line}: "):
                continue
            outputs: tuple[Path, ...] = (out / "rgb" / f"{name}.jpg", out / "label" / f"{name}.png")
            if drop_hair:
                outputs = (dropped_mask_path(out, name), *outputs)
            jobs.append(Job(name, split, out, outputs, {"root": str(root), "drop_hair": drop_hair}))
    refuse_discarded(report, strict)
    provenance = Provenance("Helen-D" if drop_hair else "Helen", "helen11", "helen", options)
    run = RunOptions(workers, strict, overwrite, on_progress)
    return convert_and_finish(jobs, convert_one, report, out, root, provenance, run)
