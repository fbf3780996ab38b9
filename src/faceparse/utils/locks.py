"""One writer per output folder: an advisory lock that the operating system releases when its holder dies.

Two jobs writing one folder mix their outputs (two `synth` runs with different seeds, two conversions
with different options), and a job cleaning up temporaries would delete the other's work in progress.
:func:`folder_lock` takes an exclusive ``flock`` on ``<folder>/.faceparse.lock`` for the length of the job;
a second writer is refused at once with a :class:`DataError` naming the folder and the holder's pid.

Why ``fcntl.flock`` on a file rather than a file created with ``O_CREAT | O_EXCL``: the kernel drops the
lock when the holder's last descriptor closes, however it ends (Ctrl-C, ``kill -9``, a crash), so a stale
lock never blocks anyone and no pid-is-alive guessing is needed. Processes forked by the holder share the
lock: if the holder is killed outright, the folder stays locked while any of its workers still runs (they
may still be writing); a job that ends normally unlocks explicitly, whatever its children do.

Why not the ``filelock`` package: its Unix lock is the same ``flock``, but it truncates the file on every
attempt, so the holder's pid could not be kept in it to name the holder. ``flock`` is POSIX (Linux,
macOS); on NFS it works where the mount supports locks (Linux maps it onto NFS byte-range locks).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from faceparse.utils.io import DataError

__all__ = ["LOCK_FILE", "folder_lock"]

LOCK_FILE = ".faceparse.lock"

_held: dict[Path, int] = {}  # folders this process has locked → nesting depth (a job may call another)


@contextmanager
def folder_lock(folder: str | os.PathLike, job: str, *, create: bool = True) -> Iterator[Path]:
    """Hold ``folder`` for the block; raise :class:`DataError` if another process does.

    ``job`` (e.g. ``"faceparse synth"``) is recorded with this process's pid, host and start time, and shown
    to a refused writer. A missing folder is created, or with ``create=False`` (a job that writes into an
    existing dataset) is an error. The same process may take the same folder again inside the block (a
    workflow calling a job). Yields the folder.
    """
    folder = Path(folder)
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise DataError(folder, "folder not found")
    key = folder.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield folder
        finally:
            _held[key] -= 1
        return
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            raise DataError(
                folder,
                f"in use by another process ({holder}); wait for it to finish, or choose another folder",
            ) from None
        record = {
            "pid": os.getpid(),
            "job": job,
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        _held[key] = 1
        try:
            yield folder
        finally:
            if os.getpid() == record["pid"]:  # never in a forked child that somehow finalises this frame
                del _held[key]
                os.ftruncate(fd, 0)  # an unlocked file names nobody
                # explicitly: children forked meanwhile (DataLoader workers, a pool's) share this open file
                # and would otherwise keep it locked for as long as they linger
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _describe(fd: int) -> str:
    """The holder as its lock file records it: ``pid 123: faceparse synth, on host since ...``."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {holder['pid']}: {holder['job']}, on {holder['host']} since {holder['since']}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):  # written a moment from now, or by hand
        return f"see {LOCK_FILE}"
