"""Names that mean one thing: GNS reports no energy in ASE, MLPotential honours precision and refuses unknown
arguments, an ensemble names its thermostat in both engines, a PDB made by maskpot reads atom for atom in
OpenMM, and no OpenMM run prints the simtk deprecation warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (before openmm)
from ase.calculators.calculator import PropertyNotImplementedError

from maskpot.data.frame import Frame
from tests.faults.conftest import assert_one_line, run_cli


def test_ase_force_centric_model_reports_no_energy(export_factory, water_atoms):
    from maskpot.ase import MaskpotCalculator

    atoms = water_atoms.copy()
    atoms.calc = MaskpotCalculator(export_factory("ase", "gns"))
    assert atoms.calc.implemented_properties == ["forces"]
    assert np.abs(atoms.get_forces()).max() > 0
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_potential_energy()


def test_mlpotential_precision_and_unknown_arguments(export_factory, water_atoms):
    from openmmml import MLPotential

    from maskpot.openmm.system import topology_from_frame

    model = str(export_factory("openmm", "painn", "float64"))
    top = topology_from_frame(Frame.from_atoms(water_atoms))
    with pytest.raises(TypeError, match="unknown argument\\(s\\) devce"):
        MLPotential("maskpot", modelPath=model, devce="cpu")
    with pytest.raises(TypeError, match="unknown argument\\(s\\) precison"):
        MLPotential("maskpot", modelPath=model).createSystem(top, precison="double")
    with pytest.raises(ValueError, match="precision='single' needs a float32 export but .* is float64: re-export "
                                         "with --dtype float32, or pass precision='double'"):
        MLPotential("maskpot", modelPath=model, precision="single").createSystem(top)
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        MLPotential("maskpot", modelPath=model).createSystem(top, precision="half")
    system = MLPotential("maskpot", modelPath=model).createSystem(top, removeCMMotion=False, precision="double")
    assert system.getNumForces() == 1


def test_bare_nvt_is_refused_with_the_two_thermostats_named(export_factory, water_atoms, tmp_path):
    structure = tmp_path / "water.extxyz"
    water_atoms.write(structure)
    assert_one_line(run_cli("md", export_factory("openmm"), "--structure", structure, "--ensemble", "nvt"),
                    "ensemble 'nvt' names no thermostat: choose nvt-langevin or nvt-nose-hoover")


def test_each_thermostat_is_the_same_in_both_engines(tmp_path):
    from maskpot.lammps.md import md_deck
    from maskpot.md import ENSEMBLES
    from maskpot.openmm.md import MDConfig, _integrator

    openmm_kind = {e: type(_integrator(MDConfig(ensemble=e))).__name__ for e in ENSEMBLES}
    assert openmm_kind == {"nvt-langevin": "LangevinMiddleIntegrator", "nvt-nose-hoover": "NoseHooverIntegrator",
                           "nve": "VerletIntegrator"}
    deck = {e: md_deck(Path("w.data"), Path("m.pt"), Path("p.so"), ["H", "O"], 10, 0.5, 300.0, e, 5,
                       Path("d"), 0) for e in ENSEMBLES}
    assert "fix thermostat all langevin 300.0 300.0 1.0" in deck["nvt-langevin"]
    assert "fix integrate all nve" in deck["nvt-langevin"]
    assert "fix integrate all nvt temp 300.0 300.0 0.05" in deck["nvt-nose-hoover"]  # 100 steps of 0.5 fs
    assert "langevin" not in deck["nve"] and "nvt" not in deck["nve"]


def test_nose_hoover_md_runs_in_openmm(export_factory, water_atoms, tmp_path):
    from maskpot.openmm.md import MDConfig, run_openmm_md

    result = run_openmm_md(str(export_factory("openmm")), Frame.from_atoms(water_atoms),
                           MDConfig(steps=4, report_interval=2, ensemble="nvt-nose-hoover"), tmp_path / "nh")
    assert np.isfinite(result["potential_energy_kj_mol"])
    assert len((tmp_path / "nh.csv").read_text().strip().splitlines()) == 1 + 2


def test_write_pdb_reads_back_atom_for_atom(water_atoms, tmp_path):
    import openmm.app as app

    from maskpot.openmm import write_pdb

    order = list(range(0, len(water_atoms), 3)) + [k for k in range(len(water_atoms)) if k % 3]  # O first, as DeePMD
    frame = Frame.from_atoms(water_atoms[order])
    pdb = app.PDBFile(str(write_pdb(frame, tmp_path / "water.pdb")))
    assert [a.element.atomic_number for a in pdb.topology.atoms()] == frame.numbers.tolist()
    np.testing.assert_allclose(pdb.getPositions(asNumpy=True)._value * 10, frame.positions, atol=1e-3)
    box = np.array(pdb.topology.getPeriodicBoxVectors()._value) * 10
    np.testing.assert_allclose(box, frame.cell, atol=1e-3)


def test_no_simtk_warning_from_create_force(export_factory):
    code = ("import torch\nfrom maskpot.openmm import create_force\n"
            f"create_force({str(export_factory('openmm'))!r}, [8, 1, 1])\nprint('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
    assert "simtk" not in res.stderr
