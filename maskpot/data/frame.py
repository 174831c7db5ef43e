"""The one in-memory representation of a structure with optional labels.

Units: positions and cell in Angstrom, energy in eV, forces in eV/Angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator


@dataclass
class Frame:
    """One structure. Only ``positions`` and ``numbers`` are required.

    Attributes:
        positions: (N, 3) float64, Angstrom.
        numbers: (N,) int64 atomic numbers.
        cell: (3, 3) float64 row vectors in Angstrom, or None for a non-periodic structure.
        pbc: (3,) bool periodicity per cell vector (all False when ``cell`` is None).
        energy: total energy in eV, or None.
        forces: (N, 3) float64 in eV/Angstrom, or None.
        source: where the frame came from (``path#index``), used in error messages.
    """

    positions: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray | None = None
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))
    energy: float | None = None
    forces: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        if len(self.numbers) != len(self.positions):
            raise ValueError(f"{self.source or 'frame'}: {len(self.positions)} positions but {len(self.numbers)} atomic numbers")
        if self.cell is not None:
            self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        if self.cell is None and self.pbc.any():
            raise ValueError(f"{self.source or 'frame'}: periodic frame has no cell")
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64).reshape(-1, 3)
            if len(self.forces) != len(self.positions):
                raise ValueError(f"{self.source or 'frame'}: {len(self.forces)} forces for {len(self.positions)} atoms")
        if self.energy is not None:
            self.energy = float(self.energy)

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def periodic(self) -> bool:
        return bool(self.pbc.any())

    def to_atoms(self) -> Atoms:
        """An ASE ``Atoms`` with a single-point calculator holding the labels."""
        atoms = Atoms(numbers=self.numbers, positions=self.positions,
                      cell=self.cell if self.cell is not None else np.zeros((3, 3)), pbc=self.pbc)
        if self.energy is not None or self.forces is not None:
            atoms.calc = SinglePointCalculator(atoms, energy=self.energy, forces=self.forces)
        return atoms

    @classmethod
    def from_atoms(cls, atoms: Atoms, source: str = "") -> "Frame":
        """Build a frame from ASE ``Atoms``; labels come from its calculator results if present."""
        energy = forces = None
        if atoms.calc is not None:
            results = getattr(atoms.calc, "results", {})
            energy = results.get("energy")
            forces = results.get("forces")
        pbc = atoms.pbc.copy()
        cell = np.array(atoms.cell) if atoms.cell.rank == 3 else None
        if cell is None and pbc.any():
            raise ValueError(f"{source or 'frame'}: periodic frame has no cell")
        return cls(positions=atoms.positions, numbers=atoms.numbers, cell=cell, pbc=pbc,
                   energy=energy, forces=forces, source=source)
