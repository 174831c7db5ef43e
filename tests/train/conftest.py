"""Small labelled water sets generated here (no external data): maskpot's water boxes, jittered, EMT labels."""

import numpy as np
import pytest
from ase.calculators.emt import EMT

from maskpot.data.frame import Frame
from maskpot.data.tip3p import water_box_positions


def labelled_water(n_frames: int = 10, n_mol: int = 8, box: float = 7.0, seed: int = 0) -> list[Frame]:
    """Water boxes with ASE EMT energies (eV) and forces (eV/Angstrom): cheap, smooth, learnable labels."""
    rng = np.random.default_rng(seed)
    base = water_box_positions(n_mol, box, rng)
    frames = []
    for k in range(n_frames):
        f = Frame(positions=base + rng.normal(0, 0.05, base.shape), numbers=np.tile([8, 1, 1], n_mol),
                  cell=np.eye(3) * box, pbc=True, source=f"emt#{k}")
        atoms = f.to_atoms()
        atoms.calc = EMT()
        frames.append(Frame(positions=f.positions, numbers=f.numbers, cell=f.cell, pbc=f.pbc,
                            energy=atoms.get_potential_energy(), forces=atoms.get_forces(), source=f.source))
    return frames


@pytest.fixture(scope="session")
def water_set() -> list[Frame]:
    return labelled_water()
