"""Molecular topology recovered from geometry: which heavy atom each H belongs to, and water molecules.

Distances use the minimum-image convention (``ase.geometry.get_distances``), so molecules split across the cell
boundary are found too. Units: Angstrom.
"""

from __future__ import annotations

import numpy as np
from ase.geometry import get_distances

from maskpot.data.frame import Frame

__all__ = ["hydrogen_parents", "water_molecules"]


def hydrogen_parents(frame: Frame) -> np.ndarray:
    """For each atom: index of the nearest heavy (non-H) atom under the minimum image if it is an H, else -1."""
    parents = np.full(len(frame), -1, dtype=np.int64)
    h = np.flatnonzero(frame.numbers == 1)
    heavy = np.flatnonzero(frame.numbers != 1)
    if len(h) == 0:
        return parents
    if len(heavy) == 0:
        raise ValueError(f"{frame.source or 'frame'}: has H atoms but no heavy atom to bond them to")
    _, dist = get_distances(frame.positions[h], frame.positions[heavy], cell=frame.cell,
                            pbc=frame.pbc if frame.cell is not None else None)
    parents[h] = heavy[np.argmin(dist, axis=1)]
    return parents


def water_molecules(frame: Frame) -> np.ndarray:
    """(M, 3) int64 rows [O, H, H], one per O atom in index order (H in index order).

    Raises ValueError naming the frame and atom when an O ends up with other than two H atoms.
    """
    parents = hydrogen_parents(frame)
    oxygens = np.flatnonzero(frame.numbers == 8)
    rows = np.empty((len(oxygens), 3), dtype=np.int64)
    for m, o in enumerate(oxygens):
        hs = np.flatnonzero(parents == o)
        if len(hs) != 2:
            raise ValueError(f"{frame.source or 'frame'}: O atom {o} has {len(hs)} H atoms nearest to it, expected 2")
        rows[m] = (o, hs[0], hs[1])
    return rows
