"""LaPa → faceparse layout (FACTS §2).

Raw layout: ``{train,val,test}/images/<id>.jpg``, ``labels/<id>.png`` (8-bit ids 0..10, the
``lapa11`` scheme), ``landmarks/<id>.txt`` (106 points: a count line, then one ``x y`` per line).

Samples keep their native resolution: the JPEG bytes are copied unchanged (no re-encoding) and
``dataset.json`` has ``image_size: null`` because sizes vary. Landmarks are copied to
``landmarks/<id>.txt`` in the output folder, unchanged, for face alignment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

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
from faceparse.data.format import SPLITS, _open, read_label, write_label
from faceparse.labels import get_scheme
from faceparse.utils.io import DataError, read_text

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

NUM_CLASSES = get_scheme("lapa11").num_classes


def read_landmarks(path: Path) -> np.ndarray:
    """A LaPa landmark file → (N, 2) float32; the first line holds N."""
    lines = [ln.split() for ln in read_text(path).splitlines() if ln.strip()]
    try:
        n = int(lines[0][0])
        pts = np.asarray([[float(v) for v in ln[:2]] for ln in lines[1 : n + 1]], dtype=np.float32)
    except (ValueError, IndexError) as e:
        raise DataError(path, f"malformed landmark file ({e})") from None
    if pts.shape != (n, 2):
        raise DataError(path, f"header says {n} points, found {len(pts)}")
    return pts


def convert_one(job: Job) -> Outcome:
    src_img, src_label, src_lmk = (Path(p) for p in job.params["src"])
    img = _open(src_img)  # full decode: a corrupt JPEG is reported here
    label = read_label(src_label)
    if label.shape != (img.height, img.width):
        raise DataError(
            src_label, f"label is {label.shape[1]}×{label.shape[0]}, image is {img.width}×{img.height}"
        )
    if label.max(initial=0) >= NUM_CLASSES:
        raise DataError(src_label, f"label id {int(label.max())} outside LaPa's 0..{NUM_CLASSES - 1}")
    notes: tuple[str, ...] = ()
    if src_lmk.is_file():
        read_landmarks(src_lmk)
        copy_file(src_lmk, job.out / "landmarks" / f"{job.sid}.txt")
    else:
        notes = (f"no landmarks: {src_lmk}",)
    rgb_out, label_out = job.outputs
    copy_file(src_img, rgb_out)
    write_label(label_out, label)
    return Outcome(job.sid, job.split, "written", size=img.size, notes=notes)


def convert_lapa(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    strict: bool = False,
    overwrite: bool = False,
    on_progress: OnProgress | None = None,
) -> ConvertReport:
    """Convert a raw LaPa folder (``train/ val/ test/``) into a faceparse dataset at ``out``."""
    root, out = Path(root), Path(out)
    present = [s for s in SPLITS if (root / s / "images").is_dir()]
    if not present:
        raise DataError(root, "no LaPa split found: expected train/images, val/images, test/images")
    check_options(out, "lapa", {}, overwrite)
    report = ConvertReport(f"LaPa → {out} (native size)")
    jobs = []
    for split in present:
        for img in sorted((root / split / "images").glob("*.jpg")):
            sid = img.stem
            if not accept_id(report, sid, split, img):
                continue
            src = (
                str(img),
                str(root / split / "labels" / f"{sid}.png"),
                str(root / split / "landmarks" / f"{sid}.txt"),
            )
            outputs = (out / "rgb" / f"{sid}.jpg", out / "label" / f"{sid}.png")
            jobs.append(Job(sid, split, out, outputs, {"src": src}))
    refuse_discarded(report, strict)
    provenance = Provenance("LaPa", "lapa11", "lapa", {})
    run = RunOptions(workers, strict, overwrite, on_progress)
    return convert_and_finish(jobs, convert_one, report, out, root, provenance, run)
