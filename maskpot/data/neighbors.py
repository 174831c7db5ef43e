"""Neighbour lists for data preparation (numpy, via vesin). Exported models use the torch version in
``maskpot.models.neighbors`` instead, which needs no extra library at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import vesin

if TYPE_CHECKING:
    from maskpot.data.frame import Frame

__all__ = ["mean_neighbors", "neighbor_list"]


def neighbor_list(positions: np.ndarray, cell: np.ndarray | None, pbc, cutoff: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i, j, shift) with |pos[j] - pos[i] + shift @ cell| < cutoff, both directions.

    Args:
        positions: (N, 3) Angstrom.
        cell: (3, 3) row vectors in Angstrom, or None for a non-periodic structure.
        pbc: bool or (3,) bools, periodicity per cell vector (ignored, i.e. False, when ``cell`` is None).
        cutoff: Angstrom. May exceed half a cell vector: then an atom pairs with several images of another
            (and with its own images, never with itself at zero shift).

    Returns:
        i, j: (E,) int64; shifts: (E, 3) int64 integer cell shifts.
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if cell is None:
        if pbc.any():
            raise ValueError("periodic neighbour list requested but cell is None")
        box = np.zeros((3, 3))
    else:
        box = np.ascontiguousarray(cell, dtype=np.float64).reshape(3, 3)
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, shifts = calculator.compute(points=positions, box=box, periodic=[bool(p) for p in pbc], quantities="ijS")
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64).reshape(-1, 3)


def mean_neighbors(frames: Sequence[Frame], cutoff: float) -> float:
    """Neighbours within ``cutoff`` (Angstrom) per atom over ``frames``: directed edges / atoms, the edges
    being those training builds (``neighbor_list``, periodic images included). A ValueError when there are no
    atoms or no atom has a neighbour (a normalisation of 0 would divide by zero)."""
    edges = sum(len(neighbor_list(f.positions, f.cell, f.pbc, cutoff)[0]) for f in frames)
    atoms = sum(len(f) for f in frames)
    if edges == 0:
        raise ValueError(f"no atom of the {len(frames)} frame(s) ({atoms} atoms) has a neighbour within "
                         f"{cutoff:g} A: cannot compute avg_neighbors from them")
    return edges / atoms
