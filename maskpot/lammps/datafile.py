"""LAMMPS data files (``atom_style atomic``) from maskpot frames or ASE atoms, with the type map written down."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ase.data
import ase.io
from ase import Atoms

from maskpot.atomic import atomic_write
from maskpot.data.frame import Frame


def _one_atoms(structure: Frame | Atoms | Sequence[Frame | Atoms]) -> tuple[Atoms, str]:
    """The single structure a data file holds, as ASE Atoms, and a name for error messages."""
    if isinstance(structure, (Frame, Atoms)):
        items = [structure]
    else:
        items = list(structure)
    if len(items) != 1:
        raise ValueError(f"a LAMMPS data file holds one structure; got {len(items)} frames")
    item = items[0]
    if isinstance(item, Frame):
        return item.to_atoms(), item.source or "frame"
    return item, "structure"


def parse_species(species: str | Sequence[str]) -> list[str]:
    """'O,H' or ['O', 'H'] -> ['O', 'H'] (LAMMPS types 1, 2, ...); unknown or repeated symbols are errors."""
    names = [s.strip() for s in species.split(",")] if isinstance(species, str) else [str(s) for s in species]
    if not names or any(not s for s in names):
        raise ValueError(f"species {species!r}: give element symbols like O,H")
    for name in names:
        if name not in ase.data.atomic_numbers or name == "X":
            raise ValueError(f"species {species!r}: unknown element {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"species {species!r}: an element is listed twice")
    return names


def write_data(structure: Frame | Atoms | Sequence[Frame | Atoms], path: str | Path,
               species: str | Sequence[str]) -> Path:
    """Write one periodic structure as a LAMMPS data file (Angstrom; valid for ``units metal`` and ``real``).

    ``species`` orders the LAMMPS atom types (type 1 = species[0], ...) and must match the element list of
    ``pair_coeff * * model.pt ...``; the first line of the file records this map. Atoms are wrapped into the cell;
    a cell that is not lower-triangular is rotated into LAMMPS' orientation by ASE. Written atomically.
    """
    atoms, name = _one_atoms(structure)
    names = parse_species(species)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(names))
    if missing:
        raise ValueError(f"{name}: element {missing[0]} is not in species {','.join(names)}")
    if atoms.cell.rank != 3:
        raise ValueError(f"{name}: no 3D cell; a LAMMPS data file needs a simulation box")
    atoms = atoms.copy()
    atoms.calc = None
    atoms.wrap()
    path = Path(path)
    types = " ".join(f"{i + 1}={s}" for i, s in enumerate(names))
    header = f"maskpot LAMMPS data, {len(atoms)} atoms, atom types {types} (pair_coeff * * model.pt {' '.join(names)})"
    def write(tmp: str) -> None:
        ase.io.write(tmp, atoms, format="lammps-data", specorder=names, masses=True, units="metal",
                     atom_style="atomic")
        lines = Path(tmp).read_text().split("\n")
        lines[0] = header
        Path(tmp).write_text("\n".join(lines))

    atomic_write(path, write)
    return path
