"""Sanity checks on structures before they reach a model or an engine."""

from __future__ import annotations

import numpy as np

from maskpot.data.frame import Frame
from maskpot.data.neighbors import neighbor_list

MIN_DISTANCE = 0.5  # Angstrom: no chemically sensible structure has two atoms closer than this


def check_no_overlap(frame: Frame, min_distance: float = MIN_DISTANCE) -> None:
    """Raise a one-line ValueError naming the first pair of atoms closer than ``min_distance`` Angstrom
    (minimum image under periodic boundaries)."""
    i, j, shifts = neighbor_list(frame.positions, frame.cell, frame.pbc, min_distance)
    if len(i) == 0:
        return
    vec = frame.positions[j] - frame.positions[i]
    if frame.cell is not None:
        vec = vec + shifts @ frame.cell
    k = int(np.argmin(np.linalg.norm(vec, axis=1)))
    a, b = sorted((int(i[k]), int(j[k])))
    raise ValueError(f"{frame.source or 'structure'}: atoms {a} and {b} overlap ({np.linalg.norm(vec[k]):.3f} A apart; "
                     f"minimum {min_distance} A)")
