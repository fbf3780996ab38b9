"""Small IO helpers shared by every writer: atomic writes and clear errors naming the file."""

from __future__ import annotations

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
    """Bad input data. The message always names the offending file and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


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


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"not valid JSON ({e})") from None
