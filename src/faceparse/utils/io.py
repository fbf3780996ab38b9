"""Small IO helpers shared by every writer: atomic writes and clear errors naming the file."""

from __future__ import annotations

import codecs
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class DataError(Exception):
    """Bad input data. The message always names the offending file and the problem.

    ``DataError(text)`` with one argument is how torch's DataLoader re-raises the error of a worker
    process (``exc_type(text)``, the text holding the worker's traceback): the problem is then the
    message of the last DataError in that text, so that the CLI still ends a training run with one
    clean line naming the file rather than a traceback.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str | None = None):
        if problem is None:  # re-raised from a DataLoader worker: ``path`` is torch's text
            path, problem = None, _worker_problem(str(path))
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across processes with its path
        return (type(self), (self.path, self.problem))


def _worker_problem(text: str) -> str:
    """The message of the last ``DataError`` in a worker's traceback text, and where it was raised."""
    marker = f"{DataError.__name__}: "
    at = text.rfind(marker)
    if at < 0:
        return text
    head = text.partition("\n")[0]  # "Caught DataError in DataLoader worker process 0."
    where = head.removeprefix(f"Caught {DataError.__name__} ").rstrip(".")
    return f"{text[at + len(marker) :].strip()} ({where})"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder; rename it onto ``path`` only if the block succeeds.

    Readers therefore never see a half-written file, and an interrupted job leaves no partial output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = None
    try:  # from the moment the file exists: a stopped worker's SIGTERM may land anywhere in here
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
        tmp_path = Path(tmp)
        os.close(fd)
        follow_umask(tmp_path)  # mkstemp makes 0600 files
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def follow_umask(path: str | os.PathLike) -> None:
    """Give ``path`` the permissions that ``open`` or ``mkdir`` would: 0666 (files) or 0777 (folders) less
    the process's umask. For what ``mkstemp``/``mkdtemp`` and some writers create owner-only."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~_UMASK)


# How atomic_path and the checkpoint writer name their temporaries: mkstemp/mkdtemp's 8 random characters
# between ".<final name>." and ".tmp[<suffix>]"
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[^.]+)?")


def remove_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporary files and folders that killed writers left anywhere under ``folder``.

    Only while no other process writes there (hold the folder's ``faceparse.utils.locks.folder_lock``):
    another writer's temporaries are work in progress. Returns how many were removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    found = [p for p in folder.rglob(".*.tmp*") if _TEMPORARY.fullmatch(p.name)]
    for path in sorted(found, key=lambda p: len(p.parts), reverse=True):  # deepest first
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(found)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save(path: str | os.PathLike, save: Callable[[Path], None]) -> None:
    """Run ``save(tmp_path)`` (e.g. ``Image.save``/``torch.save``) and move the result into place."""
    with atomic_path(path) as tmp:
        save(tmp)


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file's contents, without a leading byte-order mark (Windows editors write one).

    Every input text file (split, list, mapping and partition files, JSON) is read through here, so a
    file in another encoding is a :class:`DataError` naming the file, the byte and where it is."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror or e})") from None
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise DataError(
                path, "UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8"
            ) from None
        at = bom + e.start
        line = data.count(b"\n", 0, at) + 1
        raise DataError(
            path, f"not UTF-8 text: byte 0x{data[at]:02x} at offset {at} (line {line}); save it as UTF-8"
        ) from None


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON ({e})") from None


def file_identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """What makes two paths the same file (links, case-insensitive file systems): device and inode; None
    when there is no such file."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
