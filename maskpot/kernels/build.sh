#!/usr/bin/env bash
# Build maskpot's torch operators into <repo>/build/kernels/libmaskpot_kernels.so (see CMakeLists.txt here).
# Uses the python on PATH (the project venv) to find the torch wheel. Incremental: a second run with nothing
# changed is a quick no-op; a failed build exits non-zero with the compiler's message.
# Usage: bash maskpot/kernels/build.sh [--clean]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/maskpot/kernels"
BUILD="$ROOT/build/kernels"
PY="${PYTHON:-python}"

if [ "${1:-}" = "--clean" ]; then rm -rf "$BUILD"; fi

# Locate the torch wheel without importing it (importing torch costs seconds on every no-op build).
paths="$("$PY" - 2>&1 <<'PYEOF'
import importlib.util, os, sys
spec = importlib.util.find_spec("torch")
if spec is None or not spec.submodule_search_locations:
    sys.exit(f"python package 'torch' not found by {sys.executable}")
torch_dir = list(spec.submodule_search_locations)[0]
print(";".join([os.path.join(torch_dir, "include"), os.path.join(torch_dir, "include", "torch", "csrc", "api", "include")]))
print(os.path.join(torch_dir, "lib"))
PYEOF
)" || { echo "$paths" >&2; echo "[kernels/build.sh] cannot find the torch wheel with $PY" >&2; exit 1; }
TORCH_INCLUDE_DIRS="$(sed -n 1p <<<"$paths")"
TORCH_LIBRARY_DIR="$(sed -n 2p <<<"$paths")"

mkdir -p "$BUILD"
GEN=()
if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null; then GEN=(-G Ninja); fi
if [ ! -f "$BUILD/CMakeCache.txt" ] || [ "$SRC/CMakeLists.txt" -nt "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$SRC" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DTORCH_INCLUDE_DIRS="$TORCH_INCLUDE_DIRS" -DTORCH_LIBRARY_DIR="$TORCH_LIBRARY_DIR" \
    >"$BUILD/configure.log" 2>&1 \
    || { cat "$BUILD/configure.log" >&2; echo "[kernels/build.sh] cmake configure failed" >&2; exit 1; }
fi
cmake --build "$BUILD" --parallel "${MASKPOT_BUILD_JOBS:-2}"
test -f "$BUILD/libmaskpot_kernels.so"
echo "[kernels/build.sh] $BUILD/libmaskpot_kernels.so"
