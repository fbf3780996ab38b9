"""Import the authors' released depth (CelebAMask-HQ-D / LaPa-D / Helen-D zips) into a prepared dataset.

The zips hold depth only (FACTS §2): 8-bit grayscale PNGs, near = bright, black background. Their
exact layout is [unverified]; we accept ``depth/<name>.png`` or ``<name>.png`` anywhere in the
archive (or folder), match ``<name>`` to the dataset's sample ids, and store our 16-bit nearness
(``v / 255``, so 0 stays 0). A depth map whose size differs from the label map is resized with
nearest neighbour (reported). Ids without depth (the paper discarded a few low-quality samples,
Table 1) are reported and, by default, dropped from the splits; the full splits are kept in
``splits/full/``.

Zip members are checked before anything is read: absolute paths and ``..`` components are refused,
as are members whose uncompressed size or compression ratio is implausible (decompression bombs),
and PIL's own pixel-count limit applies when decoding.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from faceparse.data.format import (
    SPLITS,
    image_size,
    open_header,
    open_layout,
    read_id_list,
    read_label,
    write_depth,
    write_info,
    write_split,
)
from faceparse.utils.io import DataError

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

MAX_MEMBER_BYTES = 64 * 2**20  # one depth PNG is well under 1 MiB
MAX_TOTAL_BYTES = 32 * 2**30
MAX_RATIO = 200.0  # PNGs barely compress further; a huge ratio means a crafted member
MAX_PIXELS = 4096 * 4096
DROPPED_DIR = "dropped"  # Helen-D: regions whose depth is cleared (faceparse.data.convert.helen)


@dataclass
class ImportReport:
    """What an import did, by name: written/skipped counts, unmatched ids both ways, refused members."""

    source: str
    written: int = 0
    skipped: int = 0
    resized: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)  # "member: reason"
    bad: list[str] = field(default_factory=list)  # "path: problem"
    duplicates: list[str] = field(default_factory=list)
    depth_without_sample: list[str] = field(default_factory=list)
    sample_without_depth: dict[str, list[str]] = field(default_factory=dict)

    def table(self):
        from rich.table import Table

        t = Table("", "count", title=f"depth import from {self.source}")
        rows = [
            ("written", self.written),
            ("already there", self.skipped),
            ("resized (nearest)", len(self.resized)),
            ("refused zip members", len(self.unsafe)),
            ("unreadable", len(self.bad)),
            ("duplicate names", len(self.duplicates)),
            ("depth with no sample", len(self.depth_without_sample)),
        ]
        rows += [(f"{s} samples with no depth", len(v)) for s, v in self.sample_without_depth.items()]
        for k, v in rows:
            t.add_row(k, f"{v:,}")
        return t

    def problems(self) -> list[str]:
        return [*(f"refused zip member {u}" for u in self.unsafe), *self.bad]


@dataclass(frozen=True)
class DepthSource:
    """One depth file: its name in the archive/folder and a reader of its bytes."""

    name: str
    stem: str
    in_depth_dir: bool


def _stem_of(name: str) -> tuple[str, bool] | None:
    p = PurePosixPath(name)
    if p.suffix.lower() != ".png" or p.name.startswith("."):
        return None
    return p.stem, "depth" in (x.lower() for x in p.parts[:-1])


def check_member(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be read (None when it is safe)."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "'..' path traversal"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"uncompressed size {info.file_size:,} B exceeds {MAX_MEMBER_BYTES:,} B"
    if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
        return (
            f"compression ratio {info.file_size / info.compress_size:.0f} exceeds {MAX_RATIO:.0f} (zip bomb?)"
        )
    return None


class DepthArchive:
    """A zip file or a folder of depth PNGs, read safely."""

    def __init__(self, src: str | os.PathLike, report: ImportReport):
        self.src = Path(src)
        self.report = report
        self._zip: zipfile.ZipFile | None = None
        if self.src.is_file():
            try:
                self._zip = zipfile.ZipFile(self.src)
            except zipfile.BadZipFile as e:
                raise DataError(self.src, f"not a valid zip file ({e})") from None
        elif not self.src.is_dir():
            raise DataError(self.src, "depth source not found (expected a .zip or a folder)")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def sources(self) -> dict[str, DepthSource]:
        """{stem: source}; a name under a ``depth/`` folder wins over the same stem elsewhere."""
        found: dict[str, DepthSource] = {}
        for name in self._names():
            parsed = _stem_of(name)
            if parsed is None:
                continue
            src = DepthSource(name, *parsed)
            prev = found.get(src.stem)
            if prev is not None:
                self.report.duplicates.append(f"{src.stem}: {prev.name} and {name}")
                if prev.in_depth_dir or not src.in_depth_dir:
                    continue
            found[src.stem] = src
        return found

    def _names(self) -> Iterator[str]:
        if self._zip is None:
            for p in sorted(self.src.rglob("*.png")):
                yield p.relative_to(self.src).as_posix()
            return
        total = 0
        for info in self._zip.infolist():
            if info.is_dir():
                continue
            why = check_member(info)
            if why is None:
                total += info.file_size
                if total > MAX_TOTAL_BYTES:
                    raise DataError(self.src, f"archive expands to more than {MAX_TOTAL_BYTES:,} B; refusing")
                yield info.filename
            else:
                self.report.unsafe.append(f"{info.filename}: {why}")

    def read(self, src: DepthSource) -> np.ndarray:
        """Decode one depth PNG → (H, W) nearness float32 in [0, 1]."""
        where = f"{self.src}!{src.name}" if self._zip is not None else str(self.src / src.name)
        if self._zip is not None:
            try:
                with self._zip.open(src.name) as f:
                    data = f.read(MAX_MEMBER_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise DataError(where, f"corrupt zip member ({e})") from None
        else:
            data = (self.src / src.name).read_bytes()
        return decode_depth_png(data, where)


def decode_depth_png(data: bytes, where: str) -> np.ndarray:
    """8-bit (near = bright) or 16-bit gray PNG bytes → nearness in [0, 1]."""
    with open_header(io.BytesIO(data), where, MAX_PIXELS, unreadable="unreadable depth image") as img:
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(where, f"unreadable depth image ({e})") from None
        arr = np.asarray(img)
    if arr.ndim == 3:
        if not all(np.array_equal(arr[..., 0], arr[..., c]) for c in (1, 2)):
            raise DataError(where, "depth image has colour channels that differ; expected grayscale")
        arr = arr[..., 0]
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype in (np.uint16, np.int32) and arr.min(initial=0) >= 0 and arr.max(initial=0) <= 65535:
        return arr.astype(np.float32) / 65535.0
    raise DataError(where, f"depth must be 8-bit or 16-bit grayscale, got {arr.dtype}")


def resize_nearest(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) → ``size`` = (width, height) by nearest neighbour (no blending across edges)."""
    return np.asarray(
        Image.fromarray(depth, mode="F").resize(size, Image.Resampling.NEAREST), dtype=np.float32
    )


def clear_dropped(data: Path, sid: str, depth: np.ndarray) -> np.ndarray:
    """Zero depth where the converter dropped a region's labels (Helen-D hair, paper §3.1)."""
    p = data / DROPPED_DIR / f"{sid}.png"
    if p.is_file():
        m = read_label(p) > 0  # an 8-bit mask
        if m.shape == depth.shape:
            depth = depth.copy()
            depth[m] = 0.0
    return depth


def label_size(data: Path, sid: str) -> tuple[int, int] | None:
    p = data / "label" / f"{sid}.png"
    if not p.is_file():
        return None
    return image_size(p)


def dataset_ids(data: Path) -> dict[str, list[str]]:
    """{split: ids} from ``splits/full/`` when an earlier import filtered the splits, else ``splits/``."""
    lay = open_layout(data)
    out = {}
    for split in SPLITS:
        full = data / "splits" / "full" / f"{split}.txt"
        if full.is_file():
            out[split] = read_id_list(full)
        elif lay.split_file(split).is_file():
            out[split] = lay.split_ids(split)
    return out


def filter_splits(data: Path, ids: dict[str, list[str]], has_depth: set[str]) -> None:
    """Keep only samples with depth in ``splits/``; the full lists go to ``splits/full/`` (once)."""
    for split, split_ids in ids.items():
        full = data / "splits" / "full" / f"{split}.txt"
        if not full.is_file():
            write_split(data, f"full/{split}", split_ids)
        write_split(data, split, [i for i in split_ids if i in has_depth])


def finish_import(
    data: Path,
    lay,
    ids: dict[str, list[str]],
    known: Iterable[str],
    report: ImportReport,
    drop_missing: bool,
    *,
    source: str,
    depth_range: float | None,
    unit: str | None,
    origin: Path,
) -> None:
    """After a depth import: list samples left without depth, drop them from the splits if asked, and
    record the depth encoding, its coverage ("all" / "partial") and the provenance in dataset.json."""
    has_depth = {i for i in known if (data / "depth" / f"{i}.png").is_file()}
    report.sample_without_depth = {s: [i for i in v if i not in has_depth] for s, v in ids.items()}
    if drop_missing:
        filter_splits(data, ids, has_depth)
    missing = any(report.sample_without_depth.values())
    info = lay.info
    info.depth.encoding, info.depth.source, info.depth.range, info.depth.unit = (
        "nearness16",
        source,
        depth_range,
        unit,
    )
    info.depth.coverage = "partial" if missing and not drop_missing else "all"
    info.counts = {s: sum(i in has_depth for i in v) if drop_missing else len(v) for s, v in ids.items()}
    info.provenance["depth_import"] = {
        "source": str(origin.resolve()),
        "written": report.written,
        "missing": {s: len(v) for s, v in report.sample_without_depth.items()},
    }
    write_info(data, info)


def import_released(
    src: str | os.PathLike,
    data: str | os.PathLike,
    *,
    drop_missing: bool = True,
    overwrite: bool = False,
    strict: bool = False,
    on_progress: OnProgress | None = None,
) -> ImportReport:
    """Merge released 8-bit depth (zip or folder) into the prepared dataset ``data`` (module docstring).

    ``on_progress(done, total, info)`` (:mod:`faceparse.utils.progress`) is called once before the first
    depth map and after each one, written, skipped or bad (``info`` is ``""``).
    """
    data = Path(data)
    lay = open_layout(data)
    report = ImportReport(str(src))
    ids = dataset_ids(data)
    known = {i for v in ids.values() for i in v}
    archive = DepthArchive(src, report)
    try:
        sources = archive.sources()
        if strict and report.unsafe:
            raise DataError(Path(src), f"refused zip member {report.unsafe[0]} (--strict)")
        report.depth_without_sample = sorted(set(sources) - known)
        todo = [sources[i] for v in ids.values() for i in v if i in sources]
        if on_progress is not None:
            on_progress(0, len(todo), "")
        for done, s in enumerate(todo, start=1):
            _import_one(archive, s, data, report, overwrite, strict)
            if on_progress is not None:
                on_progress(done, len(todo), "")
    finally:
        archive.close()
    finish_import(
        data, lay, ids, known, report, drop_missing,
        source="released-8bit", depth_range=None, unit=None, origin=Path(src),
    )  # fmt: skip
    return report


def _import_one(
    archive: DepthArchive, s: DepthSource, data: Path, report: ImportReport, overwrite: bool, strict: bool
) -> None:
    out = data / "depth" / f"{s.stem}.png"
    if out.is_file() and not overwrite:
        report.skipped += 1
        return
    try:
        depth = archive.read(s)
        size = label_size(data, s.stem)
    except DataError as e:
        if strict:
            raise
        report.bad.append(str(e))
        return
    if size is not None and (depth.shape[1], depth.shape[0]) != size:
        report.resized.append(f"{s.stem}: {depth.shape[1]}×{depth.shape[0]} → {size[0]}×{size[1]}")
        depth = resize_nearest(depth, size)
    write_depth(out, clear_dropped(data, s.stem, depth))
    report.written += 1
