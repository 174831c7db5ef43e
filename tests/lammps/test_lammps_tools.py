"""maskpot.lammps helpers and CLI commands, and the example decks run under MPI with a real export."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from water_structures import ROOT, generated_water

from maskpot.data.frame import Frame
from maskpot.lammps import parse_thermo, plugin_path, run_lammps, write_data

EXAMPLES = ROOT / "lammps" / "examples"


def maskpot_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskpot", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_plugin_path_env_override(monkeypatch, plugin, tmp_path):
    monkeypatch.setenv("MASKPOT_LAMMPS_PLUGIN", str(plugin))
    assert plugin_path() == plugin
    monkeypatch.setenv("MASKPOT_LAMMPS_PLUGIN", str(tmp_path / "missing.so"))
    with pytest.raises(FileNotFoundError, match="missing.so"):
        plugin_path()


def test_engine_environment_threads(monkeypatch):
    """Torch threads per rank: ``threads`` if given, else the caller's OMP_NUM_THREADS (or all cores) capped at
    cores / ranks, so ranks never oversubscribe the machine."""
    from maskpot.lammps import plugin

    monkeypatch.setattr(plugin, "available_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [plugin.engine_environment(n)["OMP_NUM_THREADS"] for n in (1, 2, 4, 8)] == ["4", "2", "1", "1"]
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # as setup.sh exports it
    assert [plugin.engine_environment(n)["OMP_NUM_THREADS"] for n in (1, 2)] == ["4", "2"]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert plugin.engine_environment(2)["OMP_NUM_THREADS"] == "1"
    assert plugin.engine_environment(2, threads=3)["OMP_NUM_THREADS"] == "3"
    assert os.environ["OMP_NUM_THREADS"] == "1"  # the caller's environment is left alone
    with pytest.raises(ValueError, match="threads per rank must be >= 1"):
        plugin.engine_environment(1, threads=0)


def test_write_data_type_map_and_errors(tmp_path):
    atoms = generated_water(n_side=2)
    path = write_data(Frame.from_atoms(atoms, source="box"), tmp_path / "w.data", "H,O")
    text = path.read_text()
    assert text.splitlines()[0].startswith("maskpot LAMMPS data, 24 atoms, atom types 1=H 2=O")
    back = ase.io.read(path, format="lammps-data", atom_style="atomic")
    assert list(back.get_array("type")[:3]) == [2, 1, 1]  # O H H of the first molecule
    np.testing.assert_allclose(back.positions, atoms.get_positions(wrap=True), atol=1e-12)
    with pytest.raises(ValueError, match="element O is not in species H"):
        write_data(atoms, tmp_path / "x.data", "H")
    with pytest.raises(ValueError, match="unknown element 'Xy'"):
        write_data(atoms, tmp_path / "x.data", "O,Xy")
    atoms.pbc = False
    atoms.cell = None
    with pytest.raises(ValueError, match="no 3D cell"):
        write_data(atoms, tmp_path / "x.data", "O,H")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.data"]  # nothing half-written


def test_parse_thermo_sections():
    log = """Step PotEng Press
   0  -1.5  2
WARNING: something
  10  -1.25 3
Loop time of 0.1 on 1 procs
Step Temp
 10 300
Loop time of 0.1 on 1 procs
"""
    sections = parse_thermo(log)
    assert len(sections) == 2
    np.testing.assert_array_equal(sections[0]["PotEng"], [-1.5, -1.25])
    np.testing.assert_array_equal(sections[1]["Temp"], [300.0])


def test_cli_plugin_path_and_data(plugin, tmp_path):
    done = maskpot_cli("lammps", "plugin-path", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == str(plugin)
    ase.io.write(tmp_path / "two.extxyz", [generated_water(n_side=2), generated_water(n_side=2, seed=3)])
    done = maskpot_cli("lammps", "data", "two.extxyz", "--out", "w.data", "--species", "O,H", "--index", "1",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    back = ase.io.read(tmp_path / "w.data", format="lammps-data", atom_style="atomic")
    np.testing.assert_allclose(back.positions, generated_water(n_side=2, seed=3).get_positions(wrap=True), atol=1e-12)
    done = maskpot_cli("lammps", "data", "two.extxyz", "--out", "w2.data", "--species", "H", cwd=tmp_path)
    assert done.returncode == 1 and "element O is not in species H" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "w2.data").exists()


def test_example_nvt_deck_on_two_ranks(export_factory, plugin, tmp_path):
    result = run_lammps(EXAMPLES / "in.water", nprocs=2, cwd=tmp_path,
                        variables={"model": export_factory("lammps"), "data": EXAMPLES / "water.data", "plugin": plugin, "steps": 20})
    thermo = result.last
    np.testing.assert_array_equal(thermo["Step"], [0, 10, 20])
    assert np.isfinite(thermo["PotEng"]).all() and 100 < thermo["Temp"][-1] < 2000
    grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", result.log)
    assert np.prod([int(g) for g in grid.groups()]) == 2


@pytest.mark.slow
def test_example_4096_waters_on_two_ranks(export_factory, plugin, tmp_path):
    """12288 atoms: one rank's energy is the sum over its local atoms only, so 2 ranks agree with 1 at scale."""
    model = export_factory("lammps", "painn", "float32")
    energies = []
    for nprocs in (1, 2):
        result = run_lammps(EXAMPLES / "in.water-4096", nprocs=nprocs, cwd=tmp_path,
                            variables={"model": model, "data": EXAMPLES / "water.data", "plugin": plugin,
                                       "steps": 0})
        assert "12288 atoms" in result.log
        energies.append(result.last["PotEng"][0])
    # the decks print thermo with LAMMPS' default 8 significant digits
    assert energies[1] == pytest.approx(energies[0], rel=5e-8)
    assert energies[0] == pytest.approx(64 * run_lammps(EXAMPLES / "in.water", cwd=tmp_path, variables={
        "model": model, "data": EXAMPLES / "water.data", "plugin": plugin, "steps": 0}).last["PotEng"][0], rel=5e-8)
