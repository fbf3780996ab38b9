"""Worker processes that stop cleanly on Ctrl-C: promptly, with no orphan and no half-written file.

A terminal's Ctrl-C sends SIGINT to every process of the foreground job, the parent and each worker of a
``concurrent.futures`` pool alike. Left alone, every worker dies with its own traceback, wherever it
happens to be: one killed while it holds a queue's lock leaves the pool's manager thread waiting forever,
so the parent hangs in ``shutdown``, and a further Ctrl-C leaves the workers orphaned and stuck.

Here only the parent reacts. :func:`process_pool` starts workers that ignore SIGINT (they are forked with
SIGINT blocked, so not even the moment before their initializer runs is exposed). Within
:func:`interruptible`, the first SIGINT or SIGTERM raises :class:`KeyboardInterrupt` in the parent and
later ones are ignored, so the cleanup, bounded in time, always completes: queued tasks are cancelled,
each worker gets SIGTERM, which unwinds the task it is running (``atomic_path`` removes its temporary
file) and ends it, and a worker still alive after :data:`STOP_TIMEOUT_S` is killed. Each task's outputs
are written atomically, so the next run finds whole files only and resumes. On Linux a worker also ends
when its parent dies without cleaning up (``kill -9``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

__all__ = ["STOP_TIMEOUT_S", "interruptible", "process_pool"]

STOP_TIMEOUT_S = 3.0  # how long stopped workers get to unwind their task before they are killed
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

T = TypeVar("T")


class _Stop:
    """The parent's SIGINT/SIGTERM handler: the first signal raises KeyboardInterrupt, later ones do
    nothing (``stopping`` is also set by hand when the cleanup starts for another reason)."""

    def __init__(self) -> None:
        self.stopping = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return  # already stopping: let the (bounded) cleanup finish
        self.stopping = True
        raise KeyboardInterrupt


@contextmanager
def interruptible() -> Iterator[_Stop]:
    """Within the block, the first SIGINT or SIGTERM raises KeyboardInterrupt; later ones are ignored.

    So a second Ctrl-C cannot interrupt the cleanup that the first one started (``finally`` blocks,
    :func:`process_pool`'s shutdown). The previous handlers come back when the block ends. Outside the
    main thread (where Python cannot set handlers) the block runs unchanged.
    """
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop) for sig in _SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Pool(ProcessPoolExecutor):
    """A ProcessPoolExecutor whose workers start with SIGINT blocked and run each task via :func:`_task`."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        # workers are forked inside submit: they inherit this thread's signal mask
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return super().submit(_task, fn, *args, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool of ``workers`` that a Ctrl-C stops promptly (see the module docstring).

    Leaving the block normally waits for the submitted tasks; leaving it with an exception (the
    KeyboardInterrupt of a Ctrl-C, or any error) cancels what has not started and stops the workers
    within :data:`STOP_TIMEOUT_S`, then lets the exception through.
    """
    with interruptible() as stop:
        pool = _Pool(max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),))
        try:
            yield pool
            pool.shutdown(wait=True)
        except BaseException:
            stop.stopping = True  # whatever stops the pool, a Ctrl-C now cannot cut its cleanup short
            _stop_workers(pool)
            raise


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel queued tasks, SIGTERM every worker, kill those still alive after STOP_TIMEOUT_S."""
    # the pool's processes and thread have no public handle before Python 3.14 (terminate_workers)
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(1.0)
    # let the pool's thread finish closing its pipes before the interpreter's exit hook wakes it (CPython
    # 3.11 races there, printing "Exception ignored ... Bad file descriptor")
    if manager is not None:
        manager.join(STOP_TIMEOUT_S)


# --- in the worker ----------------------------------------------------------------------------------------

_busy = False  # a task is running (SIGTERM then unwinds it instead of ending the process at once)


class _Terminated(BaseException):
    """Raised in a worker's task by SIGTERM: unwinds it (its ``finally`` blocks run), then it exits."""


def _worker_init(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by _Pool.submit; now ignored
    if sys.platform == "linux":  # end with the parent even if it is killed without cleaning up
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before prctl: nobody would signal us
            os._exit(1)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _busy:
        raise _Terminated
    os._exit(128 + signum)


def _task(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    global _busy
    _busy = True
    try:
        return fn(*args, **kwargs)
    except _Terminated:
        os._exit(128 + signal.SIGTERM)
    finally:
        _busy = False
