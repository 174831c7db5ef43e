"""Water structures for the LAMMPS tests (plain functions, imported by name: pytest's conftest modules are not
importable reliably when several test folders have one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def generated_water(n_side: int = 4, spacing: float = 3.11, seed: int = 0) -> Atoms:
    """n_side**3 waters on a jittered grid, random orientations, cubic periodic box (liquid-like density)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    half = np.deg2rad(104.52) / 2
    local = 0.9572 * np.array([[0, 0, 0], [np.sin(half), 0, np.cos(half)], [-np.sin(half), 0, np.cos(half)]])
    positions = []
    for idx in np.ndindex(n_side, n_side, n_side):
        center = (np.array(idx) + 0.5) * spacing + rng.normal(scale=0.1, size=3)
        positions.extend(center + local @ Rotation.random(random_state=rng.integers(1 << 31)).as_matrix().T)
    return Atoms(numbers=[8, 1, 1] * n_side**3, positions=positions, cell=np.eye(3) * n_side * spacing, pbc=True)


def disordered_water(seed: int = 0) -> Atoms:
    """The generated box with each molecule moved by up to 1.5 A per axis: no lattice gaps at the box faces."""
    atoms = generated_water()
    shifts = np.random.default_rng(seed).uniform(-1.5, 1.5, size=(len(atoms) // 3, 3))
    atoms.positions += np.repeat(shifts, 3, axis=0)
    return atoms


def triclinic(atoms: Atoms) -> Atoms:
    """The same box sheared into a lower-triangular (LAMMPS-orientation) triclinic cell, fractional coords kept."""
    length = atoms.cell[0, 0]
    cell = np.array([[length, 0, 0], [0.21 * length, length, 0], [-0.13 * length, 0.17 * length, length]])
    out = atoms.copy()
    out.set_cell(cell, scale_atoms=True)
    return out
