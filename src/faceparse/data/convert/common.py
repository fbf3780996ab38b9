"""Shared machinery of the raw-dataset converters: parallel map, resume, progress, reports.

A converter lists :class:`Job` s (one per sample) and a top-level ``convert_one(job) -> Outcome``
function. :func:`run_jobs` runs them (in worker processes when ``workers > 1``), skips samples whose
outputs already exist (resume), turns a :class:`DataError` raised for one sample into a reported bad
sample (fatal with ``strict``), and :func:`finish_dataset` writes ``dataset.json``, the splits and
``prepare_report.json``. Every output file is written atomically, so an interrupted run leaves only
whole files and the next run continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from faceparse.data.format import (
    DATASET_JSON,
    SPLITS,
    DatasetInfo,
    DepthInfo,
    id_problem,
    read_info,
    write_info,
    write_split,
)
from faceparse.utils.io import DataError, atomic_path, atomic_write_json, read_json, remove_temporaries
from faceparse.utils.locks import folder_lock
from faceparse.utils.workers import interruptible, process_pool

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

REPORT_JSON = "prepare_report.json"


@dataclass(frozen=True)
class Job:
    """One sample to convert. ``outputs`` are the files whose presence means the sample is done."""

    sid: str
    split: str
    out: Path
    outputs: tuple[Path, ...]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What happened to one sample: ``written``, ``skipped`` (already there) or ``bad``."""

    sid: str
    split: str
    status: str
    size: tuple[int, int] | None = None  # (width, height) of the written label map
    path: str | None = None  # the offending file of a bad sample
    problem: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class ConvertReport:
    """Counts per split (found / written / skipped / bad) and the bad samples, by name."""

    dataset: str
    outcomes: list[Outcome] = field(default_factory=list)
    discarded: list[Outcome] = field(
        default_factory=list
    )  # rejected before conversion (e.g. a missing image)

    @property
    def bad(self) -> list[Outcome]:
        return [o for o in [*self.discarded, *self.outcomes] if o.status == "bad"]

    def ids(self, split: str) -> list[str]:
        """Ids of the samples present in the output (written now or before), in conversion order."""
        return [o.sid for o in self.outcomes if o.split == split and o.status in ("written", "skipped")]

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for o in [*self.discarded, *self.outcomes]:
            row = table.setdefault(o.split, {"found": 0, "written": 0, "skipped": 0, "bad": 0})
            row["found"] += 1
            row[o.status] += 1
        return {s: table[s] for s in [*SPLITS, *sorted(set(table) - set(SPLITS))] if s in table}

    def image_size(self) -> list[int] | None:
        """``[width, height]`` when every converted sample has the same size, else None (varying sizes)."""
        sizes = {o.size for o in self.outcomes if o.status != "bad" and o.size is not None}
        return list(next(iter(sizes))) if len(sizes) == 1 else None

    def table(self):
        """A Table-1-style rich table: samples per split, with discards."""
        from rich.table import Table

        t = Table(
            "split", "found", "converted", "already there", "discarded", "in dataset", title=self.dataset
        )
        total = {"found": 0, "written": 0, "skipped": 0, "bad": 0}
        for split, row in self.counts().items():
            t.add_row(
                split,
                *(f"{row[k]:,}" for k in ("found", "written", "skipped", "bad")),
                f"{row['written'] + row['skipped']:,}",
            )
            for k in total:
                total[k] += row[k]
        t.add_row(
            "total",
            *(f"{total[k]:,}" for k in ("found", "written", "skipped", "bad")),
            f"{total['written'] + total['skipped']:,}",
            style="bold",
        )
        return t

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "counts": self.counts(),
            "bad": [{"id": o.sid, "split": o.split, "path": o.path, "problem": o.problem} for o in self.bad],
            "notes": [f"{o.split}/{o.sid}: {n}" for o in self.outcomes for n in o.notes],
        }


def bad(sid: str, split: str, err: DataError) -> Outcome:
    return Outcome(sid, split, "bad", path=None if err.path is None else str(err.path), problem=err.problem)


def accept_id(report: ConvertReport, sid: str, split: str, source: Path, where: str = "") -> bool:
    """True when ``sid`` may name a sample (:func:`faceparse.data.format.id_problem`: a plain file stem).

    Otherwise the sample goes to ``report.discarded`` as bad, naming ``source`` (the list file or raw
    file the name came from) and ``where`` in it (``"line 3: "``), and False comes back: a name from a
    list is never followed as a path (``../x`` or ``/abs/x`` would read and write outside the folders).
    """
    problem = id_problem(sid)
    if problem is None:
        return True
    problem = f"{where}name {sid!r} is not a plain file stem: {problem}"
    report.discarded.append(Outcome(sid, split, "bad", path=str(source), problem=problem))
    return False


def refuse_discarded(report: ConvertReport, strict: bool) -> None:
    """With ``strict``, the first sample discarded before conversion stops the run (like a bad sample)."""
    if strict and report.discarded:
        o = report.discarded[0]
        raise DataError(o.path, f"sample {o.sid!r}: {o.problem} (--strict)")


def _run_one(convert_one: Callable[[Job], Outcome], job: Job, overwrite: bool) -> Outcome:
    if not overwrite and all(p.is_file() for p in job.outputs):
        return Outcome(job.sid, job.split, "skipped", size=_png_size(job.outputs[-1]))
    try:
        return convert_one(job)
    except DataError as e:
        return bad(job.sid, job.split, e)


def _png_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as img:  # lazy: reads the header only
            return img.size
    except (OSError, Image.DecompressionBombError):  # size unknown; check-data names a damaged file
        return None


def _run_chunk(convert_one: Callable[[Job], Outcome], jobs: list[Job], overwrite: bool) -> list[Outcome]:
    return [_run_one(convert_one, j, overwrite) for j in jobs]


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class RunOptions:
    """How a conversion runs: worker processes (None: up to 8, one per core), ``strict`` (the first bad
    sample stops it), ``overwrite`` (redo finished samples) and the progress callback."""

    workers: int | None = None
    strict: bool = False
    overwrite: bool = False
    on_progress: OnProgress | None = None


@dataclass(frozen=True)
class Provenance:
    """What dataset.json records about a conversion: the dataset's name and label scheme, the converter
    and its options."""

    name: str
    scheme: str
    converter: str
    options: dict[str, Any]


def run_jobs(
    jobs: Sequence[Job],
    convert_one: Callable[[Job], Outcome],
    run: RunOptions = RunOptions(),
    chunk: int = 16,
) -> list[Outcome]:
    """Run ``convert_one`` over ``jobs`` (resumable, parallel when ``workers > 1``), in job order.

    With ``strict`` the first bad sample raises its :class:`DataError`; otherwise bad samples come back
    as ``Outcome(status="bad")`` naming the file and the problem. ``on_progress(done, total, info)``
    (:mod:`faceparse.utils.progress`) is called once before the first job and after each job, written,
    skipped or bad, with ``info`` the running bad count (``"3 bad"``, or ``""`` while there is none).
    """
    run = run or RunOptions()
    workers, strict, overwrite, on_progress = run.workers or 1, run.strict, run.overwrite, run.on_progress
    results: dict[int, list[Outcome]] = {}
    chunks = [list(jobs[i : i + chunk]) for i in range(0, len(jobs), chunk)]
    done, n_bad = 0, 0

    def collect(idx: int, outs: list[Outcome]) -> None:
        nonlocal done, n_bad
        results[idx] = outs
        for o in outs:
            if strict and o.status == "bad":
                raise DataError(o.path, f"sample {o.sid!r}: {o.problem} (--strict)")
        if on_progress is not None:
            for o in outs:
                done += 1
                n_bad += o.status == "bad"
                on_progress(done, len(jobs), f"{n_bad} bad" if n_bad else "")

    if on_progress is not None:
        on_progress(0, len(jobs), "")
    if workers <= 1:
        with interruptible():  # a second Ctrl-C cannot cut short the first one's cleanup
            for idx, c in enumerate(chunks):
                collect(idx, _run_chunk(convert_one, c, overwrite))
    else:
        _run_parallel(chunks, convert_one, overwrite, workers, collect)
    return [o for idx in range(len(chunks)) for o in results[idx]]


def _run_parallel(
    chunks: list[list[Job]],
    convert_one: Callable[[Job], Outcome],
    overwrite: bool,
    workers: int,
    collect: Callable[[int, list[Outcome]], None],
) -> None:
    # A bounded window of in-flight chunks keeps memory flat for 30k-sample datasets. Leaving the pool with
    # an exception (Ctrl-C, a bad sample under --strict) cancels the rest and stops the workers promptly.
    with process_pool(workers) as pool:
        pending: dict[Future, int] = {}
        todo = iter(enumerate(chunks))
        for idx, c in todo:
            pending[pool.submit(_run_chunk, convert_one, c, overwrite)] = idx
            if len(pending) >= 4 * workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                collect(pending.pop(f), f.result())
                nxt = next(todo, None)
                if nxt is not None:
                    pending[pool.submit(_run_chunk, convert_one, nxt[1], overwrite)] = nxt[0]


MARKER = ".prepare.json"  # converter and options, written before the first sample: a rerun must match


def check_options(out: Path, converter: str, options: dict[str, Any], overwrite: bool) -> None:
    """Refuse to resume into a folder prepared (or being prepared) by another converter or with other
    options: the samples of the two would mix. ``--overwrite`` redoes every sample, so it may change them.

    The options of a conversion in progress are in ``MARKER``, those of a finished one also in dataset.json.
    """
    if overwrite:
        return
    if (out / MARKER).is_file():
        where = out / MARKER
        marker = read_json(where)
        before = {"converter": marker.get("converter"), **(marker.get("options") or {})}
    elif (out / DATASET_JSON).is_file():
        where = out / DATASET_JSON
        prev = read_info(out).provenance
        before = {"converter": prev.get("converter"), **prev.get("options", {})}
    else:
        return
    now = {"converter": converter, **options}
    if before != now:
        diff = ", ".join(
            f"{k}: {before.get(k)!r} → {now.get(k)!r}" for k in now if before.get(k) != now.get(k)
        )
        raise DataError(
            where, f"this folder was prepared with other options ({diff}); use another --out or --overwrite"
        )


def finish_dataset(
    out: Path,
    report: ConvertReport,
    *,
    name: str,
    scheme: str,
    converter: str,
    options: dict[str, Any],
    source: str,
) -> DatasetInfo:
    """Write splits, ``dataset.json`` (counts, image size, provenance) and ``prepare_report.json``."""
    counts = {}
    for split in SPLITS:
        ids = report.ids(split)
        if ids or any(o.split == split for o in report.outcomes):
            write_split(out, split, ids)
            counts[split] = len(ids)
    if (out / DATASET_JSON).is_file():
        depth = read_info(out).depth
    else:
        depth = DepthInfo(source="none", coverage="none")
    info = DatasetInfo(
        name=name,
        scheme=scheme,
        depth=depth,
        image_size=report.image_size(),
        counts=counts,
        provenance={
            "converter": converter,
            "source": source,
            "options": options,
            "discarded": len(report.bad),
        },
    )
    write_info(out, info)
    atomic_write_json(out / REPORT_JSON, report.to_json())
    return info


def copy_file(src: Path, dst: Path) -> None:
    """Copy bytes unchanged (no re-encoding), atomically."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def convert_and_finish(
    jobs: Sequence[Job],
    convert_one: Callable[[Job], Outcome],
    report: ConvertReport,
    out: Path,
    root: Path,
    provenance: Provenance,
    run: RunOptions,
) -> ConvertReport:
    """The tail every converter shares: run the jobs, then write splits, dataset.json and the report.

    ``out`` is locked meanwhile (:func:`faceparse.utils.locks.folder_lock`): a second writer is refused,
    naming this one's pid. A Ctrl-C (KeyboardInterrupt) stops the workers within seconds and removes
    their temporary files; the samples already written are kept and a rerun resumes.
    """
    if run.workers is not None and run.workers < 1:
        raise ValueError(f"workers must be at least 1 (or None: up to 8, one per core), got {run.workers}")
    run = dataclasses.replace(run, workers=run.workers or default_workers())
    with folder_lock(out, f"faceparse prepare {provenance.converter}"):
        # again, now that no other writer can change the folder under us
        check_options(out, provenance.converter, provenance.options, run.overwrite)
        remove_temporaries(out)  # a killed run's; nobody else writes here while we hold the lock
        atomic_write_json(out / MARKER, {"converter": provenance.converter, "options": provenance.options})
        try:
            report.outcomes = run_jobs(jobs, convert_one, run)
        except BaseException:
            remove_temporaries(out)  # of workers stopped mid-sample (all of them have ended by now)
            raise
        finish_dataset(
            out,
            report,
            name=provenance.name,
            scheme=provenance.scheme,
            converter=provenance.converter,
            options=provenance.options,
            source=str(root.resolve()),
        )
    return report
