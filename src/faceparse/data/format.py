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
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from faceparse.data.encoding import nearness_to_uint16, stored_to_nearness
from faceparse.labels import IGNORE_INDEX, LabelScheme, get_scheme
from faceparse.utils.io import (
    DataError,
    atomic_save,
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_text,
)

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

# The most pixels one image may decode to. A phone's 50-megapixel photo (8160×6144) fits; a 140 KB PNG
# claiming 12000×12000 (144 MP) or a 177-byte one claiming 100000² does not, and is refused from its
# header, before anything is decoded. Readers take ``max_pixels`` to raise it (None: no cap; ``faceparse
# predict --max-megapixels``). 64 MP cost predict about 1 GB (docs/inference.md).
MAX_PIXELS = 64_000_000


def megapixels(pixels: int) -> str:
    """``64``, ``0.05``, ``10000``: a pixel count in megapixels for messages."""
    return f"{round(pixels / 1e6, 2):g}"


class ImageTooLarge(DataError):
    """An image whose header claims more pixels than the cap; nothing of it was decoded."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int], max_pixels: int):
        width, height = size
        self.size, self.max_pixels = size, max_pixels
        super().__init__(
            path,
            f"{width}×{height} pixels ({megapixels(width * height)} megapixels) exceeds the limit of "
            f"{megapixels(max_pixels)} megapixels on a decoded image; not decoded",
        )


_PILLOW_LIMIT = threading.Lock()


@contextmanager
def _without_pillows_bomb_check() -> Iterator[None]:
    """Pillow's own decompression-bomb check warns (above Image.MAX_IMAGE_PIXELS, 89 MP) or raises
    (above twice that) inside Image.open, with a message that names no file, before a caller sees the
    size; and it cannot be raised per call. Our cap (:data:`MAX_PIXELS`) replaces it, checked right after
    the header is read, so Pillow's is lifted while ``Image.open`` runs (the lock keeps threads from
    restoring each other's value)."""
    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error)


def open_header(
    source: str | os.PathLike | IO[bytes],
    where: str | os.PathLike,
    max_pixels: int | None = MAX_PIXELS,
    *,
    unreadable: str = "unreadable or truncated image",
) -> Image.Image:
    """Open an image lazily (its header only) and refuse it when it claims more than ``max_pixels``.

    ``source`` is a path or a binary file; ``where`` names it in errors (:class:`DataError` saying
    ``unreadable``, :class:`ImageTooLarge`). The caller closes the image (``with open_header(...)``)."""
    try:
        with _without_pillows_bomb_check():
            img = Image.open(source)
    except _READ_ERRORS as e:
        raise DataError(where, f"{unreadable} ({e})") from None
    _check_pixels(img, where, max_pixels)
    return img


def label_map_problem(path: str | os.PathLike) -> str | None:
    """Why an existing file is not a label map as faceparse writes them (an 8-bit grey PNG); None when it is
    one. Read from the header only (``predict`` and video parsing refuse to replace anything else)."""
    try:
        with open_header(path, path, max_pixels=None) as img:
            if img.format == "PNG" and img.mode == "L":
                return None
            return f"a {img.format} image of mode {img.mode}"
    except DataError as e:
        return e.problem


def _check_pixels(img: Image.Image, where: str | os.PathLike, max_pixels: int | None) -> None:
    if max_pixels is not None and img.width * img.height > max_pixels:
        img.close()
        raise ImageTooLarge(where, img.size, max_pixels)


def fit_within(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is ``max_side`` (aspect kept, at least 1 pixel)."""
    width, height = size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 = as stored) from the header. A PNG's EXIF may follow its pixel data,
    where Pillow would decode the whole image to look; only one ahead of it is read here."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    return int(img.getexif().get(ExifTags.Base.Orientation, 1))


def image_size(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the header: nothing is decoded."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    with open_header(path, path, max_pixels) as img:
        try:
            swapped = _orientation(img) in (5, 6, 7, 8)  # the quarter turns
        except _READ_ERRORS as e:
            raise DataError(path, f"unreadable EXIF data ({e})") from None
        return (img.height, img.width) if swapped else img.size


def _open(
    path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS, max_side: int | None = None
) -> Image.Image:
    """Decode an image file whole, as displayed: its EXIF orientation applied (photos from phones are
    stored sideways with a tag saying how to turn them). The header is checked against ``max_pixels``
    first. ``max_side`` asks for an image no larger than that on its longer side: a JPEG then decodes
    at 1/2, 1/4 or 1/8 scale where that still covers it (so the cap applies to the reduced size); the
    caller shrinks the rest of the way."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    # the context manager closes the file even when decoding fails (no leaked handle)
    with open_header(path, path, max_pixels=None) as img:
        if max_side is not None and max(img.size) > max_side:
            img.draft(None, fit_within(img.size, max_side))  # a no-op for formats other than JPEG
        _check_pixels(img, path, max_pixels)
        try:
            img.load()  # force a full decode: a truncated file fails here, not later
            ImageOps.exif_transpose(img, in_place=True)
        except _READ_ERRORS as e:
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
    """(width, height) of an image as displayed, after a full decode (so a truncated file raises
    :class:`DataError`). Cheaper than :func:`read_rgb` when only validity and size matter
    (``faceparse check-data``)."""
    return _open(path).size


def read_rgb(
    path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS, max_side: int | None = None
) -> np.ndarray:
    """(H, W, 3) uint8, as displayed (EXIF orientation applied).

    ``max_pixels`` caps the pixels decoded (:data:`MAX_PIXELS`; None: no cap). ``max_side`` shrinks an
    image larger than that on its longer side to fit (aspect kept, never enlarged); see :func:`_open`."""
    img = _open(path, max_pixels=max_pixels, max_side=max_side)
    if img.mode != "RGB":
        img = img.convert("RGB")
    if max_side is not None and max(img.size) > max_side:
        img = img.resize(fit_within(img.size, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(img)


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


def read_depth_values(path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """The (H, W) values of a grayscale depth image as stored (uint8, uint16 or int32 from a PNG,
    float32 from a 32-bit TIFF), as displayed (EXIF orientation applied)."""
    path = Path(path)
    arr = np.asarray(_open(path, max_pixels=max_pixels))
    if arr.ndim == 3:  # some tools save gray depth as RGB(A) with equal channels
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise DataError(path, "depth image has colour channels that differ; expected grayscale")
        arr = arr[..., 0]
    return arr


def read_depth_stored(path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """(H, W) depth codes as stored in an 8-bit or 16-bit grayscale PNG: uint8 or uint16 (0 = no surface);
    :func:`faceparse.data.encoding.stored_to_nearness` decodes them."""
    path = Path(path)
    arr = read_depth_values(path, max_pixels=max_pixels)
    if arr.dtype == np.int32:  # PIL opens 16-bit PNGs as mode 'I' on some versions
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(path, "depth values outside 16 bits")
        arr = arr.astype(np.uint16)
    if arr.dtype not in (np.uint8, np.uint16):
        raise DataError(path, f"depth must be an 8-bit or 16-bit PNG, got {arr.dtype}")
    return arr


def read_depth(path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """(H, W) float32 nearness in [0, 1] from an 8-bit or 16-bit grayscale PNG (0 = no surface)."""
    return stored_to_nearness(read_depth_stored(path, max_pixels=max_pixels))


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


MAX_ID_BYTES = 200  # file names are at most 255 bytes; atomic writes add ".<id>.<random>.tmp.png"


def id_problem(sid: str) -> str | None:
    """Why ``sid`` cannot be a sample id, or None when it can.

    An id is a plain file stem: ``rgb/<id>.png`` must name a file directly inside ``rgb/``, whatever
    the id. So no path separator (``/``, ``\\``) or drive colon, no control character (NUL, newline: a
    split file holds one id per line), no leading ``.`` (``..``, hidden and temporary files), no white
    space at either end, nothing empty, valid UTF-8 of at most :data:`MAX_ID_BYTES` bytes. Every
    converter and split reader applies it (docs/datasets.md, "Ids").
    """
    if not sid:
        return "it is empty"
    for ch in sid:
        if ch == "/":
            return "it contains '/' (ids are file names, not paths)"
        if ch == "\\":
            return "it contains a backslash (ids are file names, not paths)"
        if ch == ":":
            return "it contains ':' (a drive on Windows)"
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return f"it contains the control character {ch!r}"
    if sid.startswith("."):
        return "it starts with '.' ('..', hidden or temporary files)"
    if sid != sid.strip():
        return "it starts or ends with white space"
    try:
        size = len(sid.encode("utf-8"))
    except UnicodeEncodeError:  # a file name's undecodable bytes (os.fsdecode's surrogates)
        return "it is not valid UTF-8 (a file name in another encoding)"
    if size > MAX_ID_BYTES:
        return f"it is longer than {MAX_ID_BYTES} bytes"
    return None


def check_id(sid: str, path: str | os.PathLike) -> str:
    """``sid`` if it is a valid id (:func:`id_problem`), else a :class:`DataError` naming ``path``."""
    problem = id_problem(sid)
    if problem is not None:
        raise DataError(path, f"id {sid!r} is not a plain file stem: {problem}")
    return sid


def write_split(root: str | os.PathLike, split: str, ids: list[str]) -> None:
    atomic_write_text(Path(root) / "splits" / f"{split}.txt", "".join(f"{i}\n" for i in ids))


def _list_entries(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped line) of a list file, skipping blank lines and ``#`` comments."""
    if not path.is_file():
        raise DataError(path, "split file not found")
    lines = (ln.strip() for ln in read_text(path).split("\n"))
    return [(n, ln) for n, ln in enumerate(lines, start=1) if ln and not ln.startswith("#")]


_NOT_IDS = ("id is not a plain file stem", "ids are not plain file stems")


def _refuse(path: Path, bad: list[str], what: tuple[str, str] = _NOT_IDS) -> None:
    """One :class:`DataError` naming ``path`` and its bad lines (the first five, and the count).

    ``what``: the headline, singular and plural."""
    if bad:
        listed = "; ".join(bad[:5]) + (f"; ... ({len(bad)} in all)" if len(bad) > 5 else "")
        raise DataError(path, f"{len(bad)} {what[len(bad) > 1]}: {listed}")


def _checked_ids(path: Path, entries: list[tuple[int, str]]) -> list[str]:
    """The ids of ``entries`` ((line, id)); every invalid id, or any duplicate, raises naming the file."""
    _refuse(path, [f"line {n}: id {sid!r}: {problem}" for n, sid in entries if (problem := id_problem(sid))])
    ids = [sid for _, sid in entries]
    seen: set[str] = set()
    dups = []
    for i in ids:
        if i in seen:
            dups.append(i)
        seen.add(i)
    if dups:
        raise DataError(path, f"duplicate ids in split: {', '.join(dups[:5])}")
    return ids


def read_id_list(path: str | os.PathLike) -> list[str]:
    """One id per line (UTF-8, BOM allowed); blank lines and ``#`` comments ignored.

    An id that is not a plain file stem (:func:`id_problem`: ``../x``, ``/abs/x``) or a duplicate is a
    :class:`DataError` naming the file and the lines."""
    path = Path(path)
    return _checked_ids(path, _list_entries(path))


def check_label_ids(path: str | os.PathLike, label: np.ndarray, scheme: LabelScheme) -> None:
    """A :class:`DataError` naming ``path`` when ``label`` holds ids outside ``scheme`` (255 = ignore is
    allowed). Checked when a sample is read: the loss would otherwise fail on it naming no file."""
    if label.size and int(label.max()) >= scheme.num_classes:
        problem = label_range_problem(np.bincount(label.ravel(), minlength=256), scheme)
        if problem is not None:
            raise DataError(path, problem)


def label_range_problem(histogram: np.ndarray, scheme: LabelScheme) -> str | None:
    """What is wrong with a label map whose (256,) value histogram is ``histogram``, or None."""
    bad = [int(v) for v in np.flatnonzero(histogram) if v >= scheme.num_classes and v != IGNORE_INDEX]
    if not bad:
        return None
    listed = ", ".join(f"{v} ({histogram[v]} px)" for v in bad)
    return (
        f"label ids out of range for scheme {scheme.name!r} "
        f"(ids 0..{scheme.num_classes - 1} and {IGNORE_INDEX}): {listed}"
    )


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
        check_id(sid, self.root)
        for ext in RGB_EXTS:
            p = self.root / "rgb" / f"{sid}{ext}"
            if p.is_file():
                return p
        return None

    def paths(self, sid: str) -> SamplePaths:
        """The files of sample ``sid`` (a :class:`DataError` naming the root if it is not a valid id)."""
        check_id(sid, self.root)

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
        # lines may be "name", "name.png" or "depth/name.png": the stem is the id
        entries, bad = [], []
        for n, entry in _list_entries(f):
            p = PurePosixPath(entry.split()[0].replace("\\", "/"))
            if p.is_absolute() or ".." in p.parts or PureWindowsPath(entry).drive:
                bad.append(f"line {n}: {entry!r} points outside the dataset folder")
            elif problem := id_problem(p.stem):
                bad.append(f"line {n}: {entry!r}: its stem {p.stem!r} is not an id: {problem}")
            entries.append((n, p.stem))
        _refuse(f, bad, ("line names no sample", "lines name no sample"))
        return _checked_ids(f, entries)


_RELEASED_HINT = " (released depth folders hold depth only: add rgb/ and label/ from the official dataset)"


def require_files(layout: Layout, split: str, paths: Sequence[SamplePaths], why: str = "") -> None:
    """A :class:`DataError` naming the first sample of ``split`` that lacks its RGB image or label map
    (and how many lack one); ``why`` is appended to the message."""
    for kind in ("rgb", "label"):
        missing = [p.id for p in paths if getattr(p, kind) is None]
        if missing:
            hint = _RELEASED_HINT if layout.kind == "released" else ""
            raise DataError(
                layout.root / kind / f"{missing[0]}.png",
                f"no {kind} file for sample {missing[0]!r} of split {split!r} "
                f"({len(missing)} of {len(paths)} samples lack one){hint}{why}",
            )


def read_sample_files(
    paths: SamplePaths, scheme: LabelScheme, depth_reader: Callable[[Path], np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The RGB image, label map and (when ``depth_reader`` is given and the sample has a depth file) the
    depth of one sample, checked: label ids within ``scheme``, and every map the size of the RGB image.
    Each problem is a :class:`DataError` naming the file."""
    assert paths.rgb is not None and paths.label is not None  # see require_files
    rgb = read_rgb(paths.rgb)  # (H, W, 3) uint8
    label = read_label(paths.label)  # (H, W) uint8
    check_label_ids(paths.label, label, scheme)  # an id past the classes fails the loss, unnamed
    if rgb.shape[:2] != label.shape:
        raise DataError(
            paths.label, f"label size {label.shape[::-1]} differs from rgb {rgb.shape[1::-1]} ({paths.rgb})"
        )
    if depth_reader is None or paths.depth is None:
        return rgb, label, None
    depth = depth_reader(paths.depth)
    if depth.shape != label.shape:
        raise DataError(paths.depth, f"depth size {depth.shape[::-1]} differs from rgb {rgb.shape[1::-1]}")
    return rgb, label, depth


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
