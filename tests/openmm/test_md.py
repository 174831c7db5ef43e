"""MD with OpenMM: the CLI runs and reports ns/day; NVE conserves energy with a trained float64 model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from maskpot.data.frame import Frame
from maskpot.export import export_checkpoint
from maskpot.openmm.md import MDConfig, run_openmm_md


def test_md_cli_writes_trajectory_and_thermo(export_factory, water_atoms, tmp_path):
    structure = tmp_path / "water.extxyz"
    water_atoms.write(structure)
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "maskpot", "md", str(export_factory("openmm")), "--structure",
                          str(structure), "--steps", "20", "--report-interval", "5", "--out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ns/day" in res.stdout
    assert out.with_suffix(".dcd").stat().st_size > 0
    rows = out.with_suffix(".csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 20 // 5 and "Potential Energy" in rows[0]


def test_nve_conserves_energy(trained_water_checkpoint, water_atoms, tmp_path):
    """1000 steps of 0.25 fs (250 fs, ~28 O-H vibrations) on 64 waters, float64, velocity Verlet.

    Bound: the total energy's fluctuation stays below 5% of the kinetic energy's, and its drift (end-start,
    averaged over 50-step windows) below 1% of the kinetic energy. Verlet's shadow-energy error scales as
    (omega dt)^2 ~ (2 pi 0.25 / 9)^2 ~ 3% of the vibrational energy for the 9 fs O-H period; a wrong force
    (not -dE/dx) or a dtype loss shows up as a drift far above this.
    """
    model = export_checkpoint(trained_water_checkpoint, "openmm", tmp_path / "m.pt", dtype="float64")
    cfg = MDConfig(steps=1000, timestep_fs=0.25, temperature=300.0, ensemble="nve", report_interval=10)
    run_openmm_md(str(model), Frame.from_atoms(water_atoms), cfg, tmp_path / "nve", minimize=True)
    data = np.genfromtxt(tmp_path / "nve.csv", delimiter=",", names=True)
    total, kinetic = data["Total_Energy_kJmole"], data["Kinetic_Energy_kJmole"]
    assert np.all(np.isfinite(total)) and kinetic.mean() > 0
    assert total.std() < 0.05 * kinetic.std(), (total.std(), kinetic.std())
    drift = abs(total[-5:].mean() - total[:5].mean())
    assert drift < 0.01 * kinetic.mean(), (drift, kinetic.mean())
