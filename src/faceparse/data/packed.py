"""Packed datasets: each split as chunked numpy arrays, memory-mapped when read (``faceparse pack``).

Decoding a 512² sample's three PNGs costs ~38 ms on one core, far too slow to feed a GPU;
:func:`pack_dataset` decodes every sample once and :class:`PackedSplit` then reads it back from
memory-mapped ``.npy`` files with no decode at all. :class:`faceparse.data.dataset.FaceParsingDataset`
opens a packed folder like any other (it detects ``packed.json``). The layout (docs/datasets.md,
"Packed datasets")::

    packed.json                   the manifest: format version, source folder, chunk size, and per split
                                  the ids in order, the sample size, each array's dtype and shape, and
                                  the chunks finished so far
    dataset.json, splits/*.txt    copies of the source's (image_size set to the packed size), so code that
                                  reads the label scheme or the splits from a root works unchanged
    <split>/rgb-00000.npy         uint8  (n, H, W, 3)
    <split>/depth-00000.npy       uint16 (n, H, W) nearness codes exactly as the 16-bit PNGs store them
                                  (8-bit depth v is stored as 257 v: the same nearness, v / 255)
    <split>/has_depth-00000.npy   bool   (n,) false where the sample has no depth file (its depth is 0)
    <split>/label-00000.npy       uint8  (n, H, W) class ids

Chunk ``c`` holds samples ``c K .. c K + n - 1`` of the split (``K`` the chunk size; ``n = K`` except
in a split's last chunk). Each chunk file is written to a temporary and renamed, and the manifest lists
a chunk as finished only once its four files are in place, so an interrupted pack resumes from its last
finished chunk (an interrupted one is redone) and a reader never sees a half-written file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceparse.data.encoding import nearness_to_uint16, stored_to_nearness
from faceparse.data.format import (
    Layout,
    SamplePaths,
    image_size,
    open_layout,
    read_depth_stored,
    read_info,
    read_sample_files,
    require_files,
    write_info,
    write_split,
)
from faceparse.utils.io import DataError, atomic_path, atomic_write_json, read_json, remove_temporaries
from faceparse.utils.locks import LOCK_FILE, folder_lock

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

__all__ = [
    "ARRAYS",
    "DEFAULT_CHUNK_SIZE",
    "PACKED_JSON",
    "PackedManifest",
    "PackedSplit",
    "PackedSplitInfo",
    "chunk_path",
    "is_packed",
    "open_chunk",
    "pack_dataset",
    "read_manifest",
]

PACKED_JSON = "packed.json"
PACK_FORMAT = "faceparse-packed"
PACK_VERSION = 1
DEFAULT_CHUNK_SIZE = 256
# array name → dtype; the per-sample shape follows from the split's (height, width)
ARRAYS: dict[str, np.dtype] = {
    "rgb": np.dtype(np.uint8),
    "depth": np.dtype(np.uint16),
    "has_depth": np.dtype(np.bool_),
    "label": np.dtype(np.uint8),
}


def sample_shape(name: str, height: int, width: int) -> tuple[int, ...]:
    """The shape of one sample of array ``name`` (a chunk is ``(n, *sample_shape)``)."""
    return {"rgb": (height, width, 3), "depth": (height, width), "has_depth": (), "label": (height, width)}[
        name
    ]


@dataclass
class PackedSplitInfo:
    """One split of the manifest: its ids in order, its sample size and the chunks already written."""

    ids: list[str]
    size: list[int]  # [width, height]
    finished: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.ids)

    def chunks(self, chunk_size: int) -> int:
        return math.ceil(self.count / chunk_size)

    def rows(self, chunk: int, chunk_size: int) -> range:
        """The sample indices that chunk ``chunk`` holds."""
        return range(chunk * chunk_size, min(self.count, (chunk + 1) * chunk_size))

    def complete(self, chunk_size: int) -> bool:
        return len(self.finished) == self.chunks(chunk_size)


@dataclass
class PackedManifest:
    """Contents of ``packed.json``."""

    source: str  # the folder that was packed (to name it when a pack is to be resumed)
    chunk_size: int
    resize: int | None  # --size, or None when the samples were packed at their own size
    splits: dict[str, PackedSplitInfo]
    version: int = PACK_VERSION

    def to_json(self) -> dict[str, Any]:
        splits = {}
        for name, info in self.splits.items():
            width, height = info.size
            splits[name] = {
                "count": info.count,
                "size": info.size,
                "chunks": info.chunks(self.chunk_size),
                "finished": sorted(info.finished),
                "arrays": {
                    a: {"dtype": ARRAYS[a].name, "shape": ["n", *sample_shape(a, height, width)]}
                    for a in ARRAYS
                },
                "ids": info.ids,
            }
        return {
            "format": PACK_FORMAT,
            "version": self.version,
            "source": self.source,
            "chunk_size": self.chunk_size,
            "resize": self.resize,
            "splits": splits,
        }

    def resume_hint(self, root: Path) -> str:
        return f"re-run `faceparse pack {self.source} --out {root}` to resume"


def is_packed(root: str | os.PathLike) -> bool:
    """True when ``root`` holds a packed dataset (its ``packed.json``)."""
    return (Path(root) / PACKED_JSON).is_file()


def chunk_path(root: str | os.PathLike, split: str, name: str, chunk: int) -> Path:
    return Path(root) / split / f"{name}-{chunk:05d}.npy"


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def read_manifest(root: str | os.PathLike) -> PackedManifest:
    """Parse and check ``packed.json``: a :class:`DataError` naming it and the malformed field."""
    path = Path(root) / PACKED_JSON
    obj = read_json(path)

    def bad(what: str) -> DataError:
        return DataError(path, f"malformed packed manifest: {what}")

    if not isinstance(obj, dict) or obj.get("format") != PACK_FORMAT:
        raise bad(f"'format' must be {PACK_FORMAT!r}")
    version: int = obj.get("version")  # type: ignore[assignment]  # checked next
    if not _positive_int(version):
        raise bad(f"'version' must be a positive integer, got {version!r}")
    if version > PACK_VERSION:
        raise DataError(
            path, f"packed format version {version} is newer than this faceparse ({PACK_VERSION})"
        )
    chunk_size: int = obj.get("chunk_size")  # type: ignore[assignment]  # checked next
    resize, source = obj.get("resize"), obj.get("source")
    if not _positive_int(chunk_size):
        raise bad(f"'chunk_size' must be a positive integer, got {chunk_size!r}")
    if resize is not None and not _positive_int(resize):
        raise bad(f"'resize' must be a positive integer or null, got {resize!r}")
    if not isinstance(source, str):
        raise bad(f"'source' must be a string, got {source!r}")
    raw_splits = obj.get("splits")
    if not isinstance(raw_splits, dict) or not raw_splits:
        raise bad("'splits' must be a non-empty mapping of split → its chunks")
    splits = {}
    for name, raw in raw_splits.items():
        where = f"splits.{name}"
        if not isinstance(raw, dict):
            raise bad(f"'{where}' must be a mapping")
        ids, size, finished = raw.get("ids"), raw.get("size"), raw.get("finished")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise bad(f"'{where}.ids' must be a non-empty list of ids")
        if len(set(ids)) != len(ids):
            raise bad(f"'{where}.ids' lists an id twice")
        if raw.get("count") != len(ids):
            raise bad(f"'{where}.count' is {raw.get('count')!r} but '{where}.ids' lists {len(ids)}")
        if not (isinstance(size, list) and len(size) == 2 and all(_positive_int(v) for v in size)):
            raise bad(f"'{where}.size' must be [width, height], got {size!r}")
        info = PackedSplitInfo(ids=ids, size=[int(v) for v in size])
        chunks = info.chunks(chunk_size)
        if raw.get("chunks") != chunks:
            got = raw.get("chunks")
            raise bad(f"'{where}.chunks' is {got!r}; {len(ids)} ids in chunks of {chunk_size} make {chunks}")
        if not isinstance(finished, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < chunks for c in finished
        ):
            raise bad(f"'{where}.finished' must list chunk numbers 0..{chunks - 1}, got {finished!r}")
        info.finished = sorted(set(finished))
        splits[str(name)] = info
    return PackedManifest(source=source, chunk_size=chunk_size, resize=resize, splits=splits, version=version)


def open_chunk(path: Path, name: str, rows: int, height: int, width: int) -> np.ndarray:
    """Memory-map one chunk file read-only, checking its dtype and shape: a :class:`DataError` naming
    it when it is missing, truncated, or not the array the manifest says."""
    if not path.is_file():
        raise DataError(path, "chunk file not found")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(path, f"unreadable or truncated chunk file ({e})") from None
    shape = (rows, *sample_shape(name, height, width))
    if array.dtype != ARRAYS[name] or array.shape != shape:
        raise DataError(
            path, f"holds {array.dtype} {array.shape}; the manifest expects {ARRAYS[name].name} {shape}"
        )
    return array


class PackedSplit:
    """Read one split of a packed dataset: each sample from memory-mapped chunk files, no decoding.

    The memory maps are opened on first use, per process: a copy sent to a DataLoader worker (pickled
    for ``spawn``, or inherited by ``fork``) opens its own.
    """

    def __init__(self, root: str | os.PathLike, split: str):
        self.root = Path(root)
        self.split = split
        self.manifest_path = self.root / PACKED_JSON
        manifest = read_manifest(self.root)
        if split not in manifest.splits:
            raise DataError(
                self.manifest_path, f"split {split!r} was not packed; packed: {', '.join(manifest.splits)}"
            )
        self.info = manifest.splits[split]
        self.chunk_size = manifest.chunk_size
        self.ids = list(self.info.ids)
        if not self.info.complete(self.chunk_size):
            raise DataError(
                self.manifest_path,
                f"unfinished pack: split {split!r} has {len(self.info.finished)} of "
                f"{self.info.chunks(self.chunk_size)} chunks; {manifest.resume_hint(self.root)}",
            )
        self.width, self.height = self.info.size
        self._maps: dict[tuple[str, int], np.ndarray] = {}
        self._pid = os.getpid()
        # (N,) bool: which samples have a depth map (read whole; the maps are not kept open)
        self.has_depth = np.concatenate(
            [np.array(self._open("has_depth", c)) for c in range(self.info.chunks(self.chunk_size))]
        )
        self._maps.clear()

    def __len__(self) -> int:
        return self.info.count

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}  # never pickle open memory maps: the receiving process opens its own
        return state

    def chunk_file(self, name: str, index: int) -> Path:
        """The chunk file of array ``name`` that holds sample ``index``."""
        return chunk_path(self.root, self.split, name, index // self.chunk_size)

    def _open(self, name: str, chunk: int) -> np.ndarray:
        if self._pid != os.getpid():  # a forked worker: its own maps
            self._maps, self._pid = {}, os.getpid()
        key = (name, chunk)
        if key not in self._maps:
            rows = len(self.info.rows(chunk, self.chunk_size))
            path = chunk_path(self.root, self.split, name, chunk)
            self._maps[key] = open_chunk(path, name, rows, self.height, self.width)
        return self._maps[key]

    def read(self, index: int, *, depth: bool = True) -> dict[str, Any]:
        """Sample ``index``: rgb uint8 (H, W, 3), depth float32 nearness (H, W) decoded from the stored
        codes (zeros when the sample has no depth map, or ``depth`` is False), label uint8 (H, W),
        has_depth (a depth map was packed), id. The arrays are fresh (writable, independent of the file)."""
        if not 0 <= index < self.info.count:
            raise IndexError(f"sample {index} of split {self.split!r} ({self.info.count} samples)")
        chunk, row = divmod(index, self.chunk_size)
        has_depth = bool(self.has_depth[index])
        if has_depth and depth:  # decoded straight from the map: no copy of the codes (docs/results.md)
            nearness = stored_to_nearness(self._open("depth", chunk)[row])
        else:
            nearness = np.zeros((self.height, self.width), np.float32)
        return {
            "rgb": np.array(self._open("rgb", chunk)[row]),
            "depth": nearness,
            "label": np.array(self._open("label", chunk)[row]),
            "has_depth": has_depth,
            "id": self.ids[index],
        }


# --- writing ----------------------------------------------------------------------------------------------


def _split_paths(layout: Layout, split: str) -> tuple[list[str], list[SamplePaths]]:
    """The ids and files of a split; every sample needs its RGB image and label map."""
    ids = layout.split_ids(split)
    if not ids:
        raise DataError(layout.split_file(split), f"split {split!r} lists no samples")
    paths = [layout.paths(sid) for sid in ids]
    require_files(layout, split, paths, why="; a packed sample needs rgb and label")
    return ids, paths


def _common_size(paths: Sequence[SamplePaths], split: str) -> list[int]:
    """[width, height] shared by every RGB image of a split (read from the headers), or a
    :class:`DataError` naming the first image whose size differs."""
    first = paths[0].rgb
    assert first is not None
    ref = image_size(first)
    for p in paths[1:]:
        assert p.rgb is not None
        size = image_size(p.rgb)
        if size != ref:
            raise DataError(
                p.rgb,
                f"size {size[0]}x{size[1]} differs from {ref[0]}x{ref[1]} ({first}, the first sample of "
                f"split {split!r}); a split's samples must share one size to be packed: pass --size N "
                "to resize them all to N×N",
            )
    return list(ref)


def _read_sample(paths: SamplePaths, layout: Layout, size: list[int], resize: bool) -> dict[str, Any]:
    """Decode one sample as it will be stored: rgb, depth uint16 codes, label, has_depth."""
    rgb, label, stored = read_sample_files(paths, layout.scheme, read_depth_stored)
    has_depth = stored is not None
    if stored is not None:
        # 8-bit depth v means nearness v / 255 = 257 v / 65535: the same value as a 16-bit code
        codes = stored.astype(np.uint16) * np.uint16(257) if stored.dtype == np.uint8 else stored
    else:
        codes = np.zeros(label.shape, np.uint16)
    width, height = size
    if label.shape != (height, width):
        if not resize:  # the headers agreed but the decoded image does not (e.g. its EXIF orientation)
            raise DataError(
                paths.rgb,
                f"size {rgb.shape[1]}x{rgb.shape[0]} differs from the split's {width}x{height}; "
                "pass --size N to resize every sample to N×N",
            )
        from faceparse.data.transforms import resize_sample  # cv2: only when resizing

        sample: dict[str, Any] = {
            "rgb": rgb, "depth": stored_to_nearness(codes), "label": label, "has_depth": has_depth,
        }  # fmt: skip
        resized = resize_sample(sample, (height, width))
        rgb, label = resized["rgb"], resized["label"]
        codes = nearness_to_uint16(np.clip(resized["depth"], 0.0, 1.0))
    return {"rgb": rgb, "depth": codes, "label": label, "has_depth": has_depth}


def _chunk_valid(root: Path, split: str, info: PackedSplitInfo, chunk: int, chunk_size: int) -> bool:
    width, height = info.size
    rows = len(info.rows(chunk, chunk_size))
    try:
        for name in ARRAYS:
            open_chunk(chunk_path(root, split, name, chunk), name, rows, height, width)
    except DataError:
        return False
    return True


def _size_option(size: int | None) -> str:
    return "at the samples' own size" if size is None else f"with --size {size}"


def _start_manifest(
    out: Path,
    data: Path,
    plans: dict[str, tuple[list[str], list[int]]],
    chunk_size: int | None,
    size: int | None,
) -> PackedManifest:
    """The manifest to continue: the one already in ``out`` (when it packs the same ids the same way,
    with its finished chunks re-checked on disk) or a new one."""
    fresh = PackedManifest(
        source=str(data.resolve()),
        chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
        resize=size,
        splits={s: PackedSplitInfo(ids=ids, size=wh) for s, (ids, wh) in plans.items()},
    )
    if not is_packed(out):
        if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
            raise DataError(
                out, "not empty and not a packed dataset (no packed.json); choose an empty or new folder"
            )
        return fresh
    old = read_manifest(out)
    path = out / PACKED_JSON
    if chunk_size is not None and chunk_size != old.chunk_size:
        raise DataError(
            path, f"was packed with chunk size {old.chunk_size}, not {chunk_size}; use a new folder"
        )
    if size != old.resize:
        raise DataError(
            path, f"was packed {_size_option(old.resize)}, not {_size_option(size)}; pack it the same way, "
            "or into a new folder",
        )  # fmt: skip
    for split, info in fresh.splits.items():
        prev = old.splits.get(split)
        if prev is not None and (prev.ids != info.ids or prev.size != info.size):
            raise DataError(
                path,
                f"split {split!r} was packed from other samples ({prev.count} ids at {prev.size[0]}x"
                f"{prev.size[1]}; {data} now has {info.count} at {info.size[0]}x{info.size[1]}); "
                "use a new folder",
            )
        if prev is not None:
            info.finished = [c for c in prev.finished if _chunk_valid(out, split, info, c, old.chunk_size)]
    fresh.chunk_size, fresh.source = old.chunk_size, old.source
    for split, info in old.splits.items():  # splits packed before and not asked for now stay
        fresh.splits.setdefault(split, info)
    return fresh


def _write_chunk(
    out: Path,
    split: str,
    chunk: int,
    info: PackedSplitInfo,
    paths: Sequence[SamplePaths],
    read: Any,
    pool: ThreadPoolExecutor,
    on_sample: Any,
) -> None:
    """Decode one chunk's samples into its four array files, each written to a temporary and renamed."""
    width, height = info.size
    with ExitStack() as stack:
        arrays = {}
        for name, dtype in ARRAYS.items():
            tmp = stack.enter_context(atomic_path(chunk_path(out, split, name, chunk)))
            shape = (len(paths), *sample_shape(name, height, width))
            arrays[name] = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        for row, sample in enumerate(pool.map(read, paths)):
            for name, array in arrays.items():
                array[row] = sample[name]
            on_sample()
        for array in arrays.values():
            array.flush()
        arrays.clear()  # unmapped before the renames


def pack_dataset(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: int | None = None,
    chunk_size: int | None = None,
    splits: Sequence[str] | None = None,
    workers: int | None = None,
    on_progress: OnProgress | None = None,
) -> PackedManifest:
    """Pack the dataset folder ``data`` into ``out`` (see the module docstring for the layout).

    ``splits``: the splits to pack (default: every split the folder has). A split's samples must share
    one size, or ``size`` resizes every sample to ``size``×``size`` (RGB area/bilinear, label nearest,
    depth masked: :func:`faceparse.data.transforms.resize_sample`). ``chunk_size``: samples per chunk
    file (default :data:`DEFAULT_CHUNK_SIZE`; a resumed pack keeps its own). Re-running on an
    interrupted ``out`` continues from its finished chunks. ``workers``: decoding threads (default: CPU
    count + 1, at most 8). ``on_progress(done, total, info)`` counts samples
    (:mod:`faceparse.utils.progress`). Returns the final manifest.
    """
    data, out = Path(data), Path(out)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if size is not None and size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    layout = open_layout(data)
    if is_packed(data):
        raise DataError(
            data / PACKED_JSON, "already a packed dataset: pack the folder of images it came from"
        )
    if out.exists() and out.resolve() == data.resolve():
        raise DataError(out, "the packed folder must differ from the dataset folder")
    names = list(splits) if splits else layout.available_splits()
    if not names:
        raise DataError(data, "no split files (splits/train.txt, ...): nothing to pack")
    sample_paths: dict[str, list[SamplePaths]] = {}
    plans: dict[str, tuple[list[str], list[int]]] = {}
    for split in names:
        ids, paths = _split_paths(layout, split)
        sample_paths[split] = paths
        plans[split] = (ids, [size, size] if size is not None else _common_size(paths, split))
    workers = workers or min(8, (os.cpu_count() or 1) + 1)

    with folder_lock(out, "faceparse pack"):
        remove_temporaries(out)  # of a killed pack: its unfinished chunk is redone
        manifest = _start_manifest(out, data, plans, chunk_size, size)
        info = read_info(data) if layout.kind == "faceparse" else layout.info
        if size is not None:
            info.image_size = [size, size]
        else:
            sizes = {tuple(s.size) for s in manifest.splits.values()}
            info.image_size = list(sizes.pop()) if len(sizes) == 1 else None
        info.provenance = {**info.provenance, "packed_from": manifest.source}
        write_info(out, info)
        for split in names:
            write_split(out, split, manifest.splits[split].ids)
        atomic_write_json(out / PACKED_JSON, manifest.to_json())

        K = manifest.chunk_size
        total = sum(manifest.splits[s].count for s in names)
        done = sum(len(manifest.splits[s].rows(c, K)) for s in names for c in manifest.splits[s].finished)
        note = f"{workers} workers" + (f", resumed at {done}" if done else "")
        if on_progress is not None:
            on_progress(done, total, note)

        def on_sample() -> None:
            nonlocal done
            done += 1
            if on_progress is not None:
                on_progress(done, total, note)

        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            for split in names:
                split_info = manifest.splits[split]

                def read(p: SamplePaths, wh: list[int] = split_info.size) -> dict[str, Any]:
                    return _read_sample(p, layout, wh, size is not None)

                for chunk in range(split_info.chunks(K)):
                    if chunk in split_info.finished:
                        continue
                    rows = split_info.rows(chunk, K)
                    chunk_samples = sample_paths[split][rows.start : rows.stop]
                    _write_chunk(out, split, chunk, split_info, chunk_samples, read, pool, on_sample)
                    split_info.finished = sorted({*split_info.finished, chunk})
                    atomic_write_json(out / PACKED_JSON, manifest.to_json())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return manifest
