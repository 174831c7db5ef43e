"""torch's CPU allocator with large blocks cached across calls, set up by maskpot's engines themselves.

An energy+forces call allocates and frees tensors of edge size: E x 3F floats, about 16 MB at 774 atoms and
250 MB at 12k atoms. Through glibc each of them is a fresh ``mmap``, zero-filled page by page on first touch and
unmapped when freed: a third of a step's CPU time, more at large sizes. The caching allocator
(lammps/src/caching_allocator.cpp, built beside the LAMMPS plugin by lammps/build.sh) keeps freed blocks of
256 KiB and more and hands them out again, so after the first call a step maps no memory. The process keeps the
memory of its largest call (it does not shrink between steps); ``release_cached()`` gives the cache back.

``tune_allocator()`` is called by every engine maskpot sets up (ASE calculator, OpenMM force, training loop);
the LAMMPS plugin enables the same library in C++. It changes the whole process: ``MASKPOT_ALLOCATOR=default``
leaves torch's allocator alone. Where the library is not built, torch's allocator stays and a debug line says so.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "MASKPOT_ALLOCATOR"
LIBRARY_NAME = "libmaskpot_allocator.so"

_library: ctypes.CDLL | None = None
_enabled: bool | None = None


def library_path() -> Path:
    """The allocator library, built next to the LAMMPS plugin (maskpot.lammps.plugin's folder for this torch)."""
    from maskpot.lammps.plugin import PLUGIN_ENV, build_dir

    override = os.environ.get(PLUGIN_ENV)
    folder = Path(override).expanduser().resolve().parent if override else build_dir()
    return folder / LIBRARY_NAME


def _load() -> ctypes.CDLL | None:
    global _library
    if _library is None:
        import torch  # noqa: F401  (the library links torch's libc10: load torch's first)

        path = library_path()
        if not path.is_file():
            log.debug("%s not built (bash lammps/build.sh): torch's own CPU allocator stays", path)
            return None
        _library = ctypes.CDLL(str(path))
        _library.maskpot_allocator_enable.restype = ctypes.c_int
        _library.maskpot_allocator_cached_bytes.restype = ctypes.c_size_t
        _library.maskpot_allocator_maps.restype = ctypes.c_size_t
    return _library


def tune_allocator() -> bool:
    """Make the caching allocator torch's CPU allocator (once per process). True when it is in place."""
    global _enabled
    if _enabled is None:
        library = None if os.environ.get(ENV, "").strip().lower() == "default" else _load()
        _enabled = bool(library is not None and library.maskpot_allocator_enable())
        log.debug("caching CPU allocator %s", "in place" if _enabled else "not used")
    return _enabled


def cached_bytes() -> int:
    """Bytes of freed blocks the cache holds for reuse (0 without the caching allocator)."""
    library = _load() if _enabled else None
    return int(library.maskpot_allocator_cached_bytes()) if library else 0


def mapped_blocks() -> int:
    """Blocks the caching allocator has mapped from the system so far (a steady state maps none)."""
    library = _load() if _enabled else None
    return int(library.maskpot_allocator_maps()) if library else 0


def release_cached() -> None:
    """Return the cached blocks to the system."""
    library = _load() if _enabled else None
    if library:
        library.maskpot_allocator_release()
