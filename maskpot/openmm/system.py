"""OpenMM System/Topology for a structure driven only by a maskpot model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskpot.data.frame import Frame
from maskpot.data.units import NM_TO_ANGSTROM
from maskpot.openmm.force import create_force


def topology_from_frame(frame: Frame):
    """An ``openmm.app.Topology`` with one residue per atom and the frame's periodic box (nm)."""
    import openmm.app as app
    from openmm import Vec3

    top = app.Topology()
    chain = top.addChain()
    for k, z in enumerate(frame.numbers):
        element = app.Element.getByAtomicNumber(int(z))
        top.addAtom(element.symbol, element, top.addResidue(element.symbol, chain))
    if frame.periodic:
        cell = frame.cell / NM_TO_ANGSTROM
        top.setPeriodicBoxVectors([Vec3(*map(float, row)) for row in cell])
    return top


def write_pdb(frame: Frame, path: str | Path) -> Path:
    """Write ``frame`` as a PDB file that ``openmm.app.PDBFile`` reads back atom for atom (atomically).

    Written by OpenMM's own ``PDBFile`` from :func:`topology_from_frame`: one residue per atom in the frame's
    order, elements in their column, the periodic box in CRYST1. (A PDB written by ASE puts every atom in one
    residue; OpenMM merges atoms of one residue with the same name, so water stored as all O then all H reads
    as 2 atoms.)
    """
    import openmm.app as app
    import openmm.unit as u

    from maskpot.atomic import atomic_write

    top = topology_from_frame(frame)

    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            app.PDBFile.writeFile(top, np.asarray(frame.positions) * u.angstrom, handle)

    return atomic_write(path, write)


def system_from_frame(frame: Frame, model_file: str, allow_non_periodic: bool = False, backend: str = "auto",
                      device: str = "auto"):
    """(System, Topology, positions in nm) for MD of ``frame`` with the exported model only (``backend`` and
    ``device``: see ``create_force``)."""
    import openmm

    from maskpot.export.metadata import read_metadata, trained_on_periodic

    meta = read_metadata(model_file)
    if not frame.periodic and trained_on_periodic(meta) and not allow_non_periodic:
        raise ValueError(f"{frame.source or 'structure'}: no periodic cell, but the model was trained on periodic "
                         "data; give a periodic structure or allow a non-periodic run explicitly")
    if frame.periodic and not frame.pbc.all():
        raise ValueError(f"{frame.source or 'structure'}: OpenMM needs periodicity in all three directions or none")
    top = topology_from_frame(frame)
    system = openmm.System()
    if frame.periodic:
        system.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    for atom in top.atoms():
        system.addParticle(atom.element.mass)
    system.addForce(create_force(model_file, top, backend=backend, device=device))
    positions = np.asarray(frame.positions) / NM_TO_ANGSTROM
    return system, top, positions
