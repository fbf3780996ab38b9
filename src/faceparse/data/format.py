"""The on-disk RGB-D face-parsing dataset format (docs/datasets.md is the user-facing description).

A dataset is a folder::

    dataset.json            name, label scheme, depth encoding, image size, counts, provenance, version
    rgb/<id>.png|jpg        8-bit RGB
    depth/<id>.png          16-bit nearness (faceparse.data.encoding); 8-bit also accepted
    label/<id>.png          8-bit class ids of the dataset's label scheme
    meta/<id>.json          optional per-sample sidecar (e.g. the synthetic generator's pose and light)
    splits/{train,val,test}.txt   one id per line

The authors' released depth (``depth/<name>.png`` 8-bit plus ``{split}_list.txt`` list files) is read
by :func:`open_layout` as well; see :class:`ReleasedLayout`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from faceparse.data.encoding import nearness_to_uint16, stored_to_nearness
from faceparse.labels import get_scheme
from faceparse.utils.io import DataError, atomic_save, atomic_write_json, atomic_write_text, read_json

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
RGB_EXTS = (".png", ".jpg", ".jpeg")
DATASET_JSON = "dataset.json"
DEPTH_COVERAGES = ("all", "partial", "none")


@dataclass
class DepthInfo:
    """How depth is encoded. ``range``/``unit`` give the metric span that nearness 0..1 covers."""

    encoding: str = "nearness16"  # see faceparse.data.encoding
    range: float | None = None
    unit: str | None = None
    source: str = ""  # e.g. "synthetic-raycast", "deep3dportrait", "mediapipe-facemesh", "released-8bit"
    # Which samples have a depth map: "all" (a missing depth file is an error), "partial" (some samples
    # legitimately lack one, e.g. ids left unmatched by a depth import), "none" (an RGB-only dataset).
    coverage: str = "all"


@dataclass
class DatasetInfo:
    """Contents of ``dataset.json``."""

    name: str
    scheme: str
    depth: DepthInfo = field(default_factory=DepthInfo)
    image_size: list[int] | None = None  # [width, height] when every sample has it, else None
    counts: dict[str, int] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any, path: Path | None = None) -> DatasetInfo:
        """Parse the contents of ``dataset.json`` (at ``path``). A malformed field is a :class:`DataError`
        naming the field, what it must be and what it is; unknown top-level keys are ignored."""
        if not isinstance(obj, dict):
            raise DataError(path, f"dataset.json must hold a JSON object, got {type(obj).__name__}")
        fields = _JsonFields(obj, path)
        version = fields.get("format_version", int, "an integer ≥ 1", FORMAT_VERSION, ok=lambda v: v >= 1)
        if version > FORMAT_VERSION:
            raise DataError(path, f"format_version {version} is newer than this faceparse ({FORMAT_VERSION})")
        scheme = fields.get("scheme", str, "a label scheme name")
        try:
            get_scheme(scheme)
        except KeyError as e:
            raise DataError(path, f"field 'scheme': {e.args[0]}") from None
        image_size = fields.get(
            "image_size", list, "[width, height] in pixels, or null", None, ok=_is_size, nullable=True
        )
        counts = fields.get("counts", dict, "a mapping of split → sample count", {}, ok=_is_counts)
        return cls(
            name=fields.get("name", str, "a non-empty string", ok=bool),
            scheme=scheme,
            depth=_depth_info(fields.get("depth", dict, "a mapping (encoding, range, ...)", {}), path),
            image_size=None if image_size is None else [int(v) for v in image_size],
            counts={str(k): int(v) for k, v in counts.items()},
            provenance=dict(fields.get("provenance", dict, "a mapping", {})),
            format_version=version,
        )


_REQUIRED = object()


class _JsonFields:
    """Typed access to a JSON object's fields, each failure a DataError naming ``prefix + key``."""

    def __init__(self, obj: dict[str, Any], path: Path | None, prefix: str = ""):
        self.obj, self.path, self.prefix = obj, path, prefix

    def get(
        self,
        key: str,
        kind: type,
        must_be: str,
        default: Any = _REQUIRED,
        *,
        ok: Callable[[Any], bool] = lambda value: True,
        nullable: bool = False,
    ) -> Any:
        if key not in self.obj:
            if default is _REQUIRED:
                raise DataError(
                    self.path, f"malformed field '{self.prefix}{key}': missing; it must be {must_be}"
                )
            return default
        value = self.obj[key]
        if value is None and nullable:
            return None
        # JSON has one number type: true/false are not numbers, 2.0 is not an integer
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind) or not ok(value):
            raise DataError(
                self.path, f"malformed field '{self.prefix}{key}': must be {must_be}, got {value!r}"
            )
        return value


def _is_size(value: list) -> bool:
    return len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def _is_counts(value: dict) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values())


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _depth_info(obj: dict[str, Any], path: Path | None) -> DepthInfo:
    unknown = sorted(set(obj) - {f.name for f in dataclasses.fields(DepthInfo)})
    if unknown:
        raise DataError(
            path,
            f"malformed field 'depth.{unknown[0]}': not a depth field ({', '.join(asdict(DepthInfo()))})",
        )
    fields, default = _JsonFields(obj, path, "depth."), DepthInfo()
    return DepthInfo(
        encoding=fields.get("encoding", str, "a string such as 'nearness16'", default.encoding),
        range=fields.get(
            "range", object, "a positive number or null", None, ok=_is_positive_number, nullable=True
        ),
        unit=fields.get("unit", str, "a string or null", None, nullable=True),
        source=fields.get("source", str, "a string", default.source),
        coverage=fields.get(
            "coverage", str, f"one of {', '.join(DEPTH_COVERAGES)}", "all", ok=lambda v: v in DEPTH_COVERAGES
        ),
    )


def write_info(root: str | os.PathLike, info: DatasetInfo) -> None:
    atomic_write_json(Path(root) / DATASET_JSON, info.to_json())


def read_info(root: str | os.PathLike) -> DatasetInfo:
    path = Path(root) / DATASET_JSON
    return DatasetInfo.from_json(read_json(path), path)


# --- image IO -----------------------------------------------------------------------------------------


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        # the context manager closes the file even when decoding fails (no leaked handle)
        with Image.open(path) as img:
            img.load()  # force a full decode: a truncated file fails here, not later
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(path, f"unreadable or truncated image ({e})") from None
    if img.format == "PNG" and not _png_complete(path):
        # PIL decodes a PNG whose pixel data is whole but whose last chunks were cut off
        raise DataError(path, "truncated PNG (no IEND chunk at the end of the file)")
    return img


_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _png_complete(path: Path) -> bool:
    """True when the file ends with PNG's IEND chunk (allowing a little trailing padding)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 256))
        return _PNG_IEND in f.read()


def decoded_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image after a full decode (so a truncated file raises :class:`DataError`).

    Cheaper than :func:`read_rgb` when only validity and size matter (``faceparse check-data``).
    """
    return _open(Path(path)).size


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8."""
    img = _open(Path(path))
    return np.asarray(img.convert("RGB"))


def read_label(path: str | os.PathLike) -> np.ndarray:
    """(H, W) uint8 class ids. Palette ('P') and grayscale ('L') PNGs are read as their raw indices."""
    path = Path(path)
    img = _open(path)
    if img.mode not in ("L", "P", "I", "I;16"):
        raise DataError(path, f"label map must be a single-channel id image, got PIL mode {img.mode!r}")
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        if arr.size and arr.max() > 255:
            raise DataError(path, f"label id {int(arr.max())} does not fit in 8 bits")
        arr = arr.astype(np.uint8)
    return arr


def read_depth(path: str | os.PathLike) -> np.ndarray:
    """(H, W) float32 nearness in [0, 1] from an 8-bit or 16-bit grayscale PNG (0 = no surface)."""
    path = Path(path)
    img = _open(path)
    arr = np.asarray(img)
    if arr.ndim == 3:  # some tools save gray depth as RGB(A) with equal channels
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise DataError(path, "depth image has colour channels that differ; expected grayscale")
        arr = arr[..., 0]
    if arr.dtype == np.int32:  # PIL opens 16-bit PNGs as mode 'I' on some versions
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(path, "depth values outside 16 bits")
        arr = arr.astype(np.uint16)
    if arr.dtype not in (np.uint8, np.uint16):
        raise DataError(path, f"depth must be an 8-bit or 16-bit PNG, got {arr.dtype}")
    return stored_to_nearness(arr)


def write_rgb(path: str | os.PathLike, rgb: np.ndarray, *, quality: int = 95) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    path = Path(path)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    kw = {"quality": quality} if fmt == "JPEG" else {"compress_level": 1}
    atomic_save(path, lambda p: Image.fromarray(rgb).save(p, format=fmt, **kw))


def write_label(path: str | os.PathLike, label: np.ndarray) -> None:
    if label.dtype != np.uint8 or label.ndim != 2:
        raise ValueError(f"label must be (H, W) uint8, got {label.shape} {label.dtype}")
    atomic_save(path, lambda p: Image.fromarray(label, mode="L").save(p, format="PNG", compress_level=1))


def write_depth(path: str | os.PathLike, nearness: np.ndarray) -> None:
    """Nearness in [0, 1] → 16-bit PNG."""
    if nearness.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {nearness.shape}")
    q = nearness_to_uint16(nearness)
    atomic_save(path, lambda p: Image.fromarray(q).save(p, format="PNG", compress_level=1))


# --- splits and layouts --------------------------------------------------------------------------------


def write_split(root: str | os.PathLike, split: str, ids: list[str]) -> None:
    atomic_write_text(Path(root) / "splits" / f"{split}.txt", "".join(f"{i}\n" for i in ids))


def read_id_list(path: str | os.PathLike) -> list[str]:
    """One id per line; blank lines and ``#`` comments ignored. Duplicates are an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "split file not found")
    ids = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    ids = [i for i in ids if i and not i.startswith("#")]
    seen: set[str] = set()
    dups = []
    for i in ids:
        if i in seen:
            dups.append(i)
        seen.add(i)
    if dups:
        raise DataError(path, f"duplicate ids in split: {', '.join(dups[:5])}")
    return ids


@dataclass(frozen=True)
class SamplePaths:
    id: str
    rgb: Path | None
    depth: Path | None
    label: Path | None
    meta: Path | None = None


class Layout:
    """The faceparse layout of one dataset folder."""

    kind = "faceparse"

    def __init__(self, root: str | os.PathLike, info: DatasetInfo):
        self.root = Path(root)
        self.info = info

    @property
    def scheme(self):
        return get_scheme(self.info.scheme)

    def split_file(self, split: str) -> Path:
        return self.root / "splits" / f"{split}.txt"

    def available_splits(self) -> list[str]:
        return [s for s in SPLITS if self.split_file(s).is_file()]

    def split_ids(self, split: str) -> list[str]:
        f = self.split_file(split)
        if not f.is_file():
            raise DataError(
                f, f"split {split!r} missing; available: {', '.join(self.available_splits()) or 'none'}"
            )
        return read_id_list(f)

    def rgb_path(self, sid: str) -> Path | None:
        for ext in RGB_EXTS:
            p = self.root / "rgb" / f"{sid}{ext}"
            if p.is_file():
                return p
        return None

    def paths(self, sid: str) -> SamplePaths:
        def opt(p: Path) -> Path | None:
            return p if p.is_file() else None

        return SamplePaths(
            id=sid,
            rgb=self.rgb_path(sid),
            depth=opt(self.root / "depth" / f"{sid}.png"),
            label=opt(self.root / "label" / f"{sid}.png"),
            meta=opt(self.root / "meta" / f"{sid}.json"),
        )


class ReleasedLayout(Layout):
    """The authors' released depth layout: ``depth/<name>.png`` (8-bit, near = bright) + ``{split}_list.txt``.

    The released zips hold depth only; RGB and labels come from a prepared official dataset. When the
    folder has ``rgb/`` and ``label/`` (e.g. after ``faceparse depth import-released`` merged it, or when
    a user placed them beside the depth) they are used; otherwise samples have depth only. The exact
    file format of the zips is [unverified] (FACTS §2); list lines may hold a bare id or a path.
    """

    kind = "released"

    def split_file(self, split: str) -> Path:
        return self.root / f"{split}_list.txt"

    def split_ids(self, split: str) -> list[str]:
        f = self.split_file(split)
        if not f.is_file():
            raise DataError(
                f, f"split {split!r} missing; available: {', '.join(self.available_splits()) or 'none'}"
            )
        # lines may be "name", "name.png" or "depth/name.png": keep the stem
        return [Path(i.split()[0]).stem for i in read_id_list(f)]


LIGHT_LEVELS = ("dark", "normal", "bright")  # faceparse synth's light modes (data/synth.py)


def light_levels(root: str | os.PathLike, split: str) -> dict[str, str]:
    """Sample id → light level (``meta/<id>.json`` ``light.mode``: dark | normal | bright) for a split.

    Only the synthetic generator records it; a dataset without it raises :class:`DataError`."""
    layout = open_layout(root)
    levels = {}
    for sid in layout.split_ids(split):
        path = layout.paths(sid).meta
        mode = (read_json(path).get("light") or {}).get("mode") if path is not None else None
        if mode is not None:
            if mode not in LIGHT_LEVELS:
                raise DataError(path, f"light.mode must be one of {LIGHT_LEVELS}, got {mode!r}")
            levels[sid] = str(mode)
    if not levels:
        raise DataError(
            layout.root / "meta",
            f"no sample of split {split!r} records its light level (meta/<id>.json 'light.mode'); "
            "`faceparse synth` datasets do",
        )
    return levels


def open_layout(root: str | os.PathLike) -> Layout:
    """Open a dataset folder in either layout, with a clear error when it is neither."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")
    if (root / DATASET_JSON).is_file():
        return Layout(root, read_info(root))
    if any((root / f"{s}_list.txt").is_file() for s in SPLITS) and (root / "depth").is_dir():
        scheme = _guess_released_scheme(root)
        info = DatasetInfo(
            name=root.name, scheme=scheme, depth=DepthInfo(encoding="nearness8", source="released-8bit")
        )
        return ReleasedLayout(root, info)
    entries = sorted(p.name for p in root.iterdir())[:10]
    raise DataError(
        root,
        "not a faceparse dataset (no dataset.json) nor a released-depth folder (depth/ + {split}_list.txt); "
        f"found: {', '.join(entries) or 'an empty folder'}",
    )


def _guess_released_scheme(root: Path) -> str:
    name = root.name.lower()
    if "celeba" in name:
        return "celebamask13"
    if "helen" in name:
        return "helen11"
    return "lapa11"


def write_sample(
    root: str | os.PathLike,
    sid: str,
    *,
    rgb: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    label: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
    rgb_ext: str = ".png",
) -> None:
    """Write one sample's files atomically (each file appears whole or not at all)."""
    root = Path(root)
    if rgb is not None:
        write_rgb(root / "rgb" / f"{sid}{rgb_ext}", rgb)
    if depth is not None:
        write_depth(root / "depth" / f"{sid}.png", depth)
    if label is not None:
        write_label(root / "label" / f"{sid}.png", label)
    if meta is not None:
        atomic_write_json(root / "meta" / f"{sid}.json", meta)
