"""ASE calculator: forces and stress are derivatives of the energy; periodic images are handled."""

from __future__ import annotations

import numpy as np
import pytest

from maskpot.ase import MaskpotCalculator

# engine agreement: also run on the current stack (setup.sh test)
pytestmark = pytest.mark.current_stack


@pytest.fixture
def calc(export_factory):
    return MaskpotCalculator(export_factory("ase"))


def test_forces_are_minus_energy_gradient(calc, water_atoms):
    atoms = water_atoms.copy()
    atoms.calc = calc
    forces = atoms.get_forces()
    h = 1e-4  # energies are ~1e4 eV: a smaller step loses the difference to rounding
    for a, k in [(0, 0), (1, 2), (50, 1), (191, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, k] += h
        minus.positions[a, k] -= h
        plus.calc = minus.calc = calc
        fd = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert forces[a, k] == pytest.approx(fd, rel=1e-5, abs=2e-7)


def test_stress_is_strain_derivative(calc, water_atoms):
    atoms = water_atoms.copy()
    atoms.set_cell(atoms.cell @ np.array([[1, 0.05, 0], [0, 1, 0.1], [0, 0, 1]]), scale_atoms=True)  # triclinic
    atoms.calc = calc
    stress = atoms.get_stress(voigt=False)
    h = 1e-4
    for a, b in [(0, 0), (1, 1), (0, 1), (1, 2)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h / 2 if a != b else h
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell @ (np.eye(3) + sign * eps), scale_atoms=True)
            strained.calc = calc
            energies.append(strained.get_potential_energy())
        fd = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
        assert stress[a, b] == pytest.approx(fd, rel=1e-5, abs=1e-10)


def test_atoms_outside_box_and_triclinic(calc, water_atoms):
    atoms = water_atoms.copy()
    atoms.set_cell(atoms.cell @ np.array([[1, 0, 0], [0.3, 1, 0], [0.2, -0.1, 1]]), scale_atoms=True)
    atoms.calc = calc
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    moved = atoms.copy()
    moved.positions[::7] += atoms.cell[0] * 2 - atoms.cell[2]  # lattice translations: same structure
    moved.positions[3::11] -= atoms.cell[1] * 3
    moved.calc = calc
    assert moved.get_potential_energy() == pytest.approx(e, rel=1e-10)
    np.testing.assert_allclose(moved.get_forces(), f, rtol=1e-8, atol=1e-10)


def test_unknown_element_is_a_clear_error(calc, water_atoms):
    atoms = water_atoms.copy()
    atoms.numbers[0] = 11
    atoms.calc = calc
    with pytest.raises(ValueError, match="Na not known to this model"):
        atoms.get_potential_energy()
