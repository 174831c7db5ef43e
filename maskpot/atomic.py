"""Safe outputs: nothing half-written is ever left at a destination, and two runs never write the same one.

Every writer in maskpot (checkpoints, exports, extxyz, LAMMPS data, CSV logs, plots, MD trajectories) goes
through :func:`atomic_outputs` (or :func:`atomic_write`, its one-file form): write to temporary files in the
destination folder, then ``os.replace`` them into place. Commands that write a named output for a long time
(export, md, training) hold :func:`exclusive_output` on it, so a second run with the same output stops at once.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["OutputInUseError", "atomic_outputs", "atomic_write", "atomic_write_text", "exclusive_output"]


class OutputInUseError(RuntimeError):
    """Another process holds :func:`exclusive_output` on the same output."""


def _cannot_write(path: Path, exc: OSError) -> OSError:
    """``exc`` re-addressed to the user's ``path`` (not the temporary file next to it)."""
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


@contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[list[str]]:
    """Temporary files next to each of ``paths``, yielded in the same order; renamed onto ``paths`` when the
    block succeeds, removed when it raises (the destinations are then untouched).

    The files get the permissions a plain ``open()`` would give (mkstemp makes them private). An OSError
    (unwritable folder, full disk) names the user's path, not the temporary file.
    """
    final = [Path(p) for p in paths]
    tmps: list[str] = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path in final:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            except OSError as exc:
                raise _cannot_write(path, exc) from None
            os.close(fd)
            tmps.append(tmp)
            os.chmod(tmp, 0o666 & ~umask)
        yield list(tmps)
        for tmp, path in zip(tmps, final):
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _cannot_write(path, exc) from None
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it to ``path``
    (see :func:`atomic_outputs`). An OSError raised by ``write`` also names ``path``."""
    path = Path(path)
    with atomic_outputs(path) as (tmp,):
        try:
            write(tmp)
        except OSError as exc:
            if exc.filename is not None and os.fspath(exc.filename) == tmp:
                raise _cannot_write(path, exc) from None
            raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def lock_path(path: str | os.PathLike) -> Path:
    """The advisory lock file of an output: ``.<name>.lock`` in the same folder."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextmanager
def exclusive_output(path: str | os.PathLike) -> Iterator[Path]:
    """Hold an advisory lock (``fcntl.flock`` on :func:`lock_path`) on the output ``path`` for the block.

    A second holder, in this or another process, gets an :class:`OutputInUseError` at once naming the output
    and the other process. The lock file holds the owner's pid; it is removed at the end of the block, and
    the kernel drops the lock when a process dies, so a killed run never blocks the next one.
    """
    path = Path(path)
    lock = lock_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _cannot_write(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputInUseError(f"{path}: another run (pid {owner}) is writing this output; wait for it "
                                   f"or choose another --out (lock {lock})") from None
        # The previous holder may have removed the file between our open and flock: then lock the new one.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.unlink(lock)
        os.close(fd)
