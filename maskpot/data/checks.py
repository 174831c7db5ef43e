"""Sanity checks on structures before they reach a model or an engine.

:func:`frame_problem` says what is wrong with one frame (a non-finite position or cell, a non-finite energy or
force, two atoms closer than ``MIN_DISTANCE``), naming the frame (``path#index``) and the atoms;
``maskpot.data.read_many``, which every training and evaluation command reads its data with, refuses the
first such frame before any model sees it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maskpot.data.frame import Frame
from maskpot.data.neighbors import neighbor_list

MIN_DISTANCE = 0.5  # Angstrom: no chemically sensible structure has two atoms closer than this

__all__ = ["MIN_DISTANCE", "check_frames", "frame_problem", "overlap_problem"]


def _first_bad_row(values: np.ndarray) -> int | None:
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def overlap_problem(frame: Frame, min_distance: float = MIN_DISTANCE) -> str | None:
    """The closest pair of atoms closer than ``min_distance`` Angstrom (minimum image under periodic
    boundaries) as one line, or None."""
    i, j, shifts = neighbor_list(frame.positions, frame.cell, frame.pbc, min_distance)
    if len(i) == 0:
        return None
    vec = frame.positions[j] - frame.positions[i]
    if frame.cell is not None:
        vec = vec + shifts @ frame.cell
    k = int(np.argmin(np.linalg.norm(vec, axis=1)))
    a, b = sorted((int(i[k]), int(j[k])))
    return (f"{frame.source or 'structure'}: atoms {a} and {b} overlap ({np.linalg.norm(vec[k]):.3f} A apart; "
            f"minimum {min_distance} A)")


def frame_problem(frame: Frame, labels: bool = True, min_distance: float = MIN_DISTANCE) -> str | None:
    """What is wrong with ``frame`` as one line naming it and the atom(s), or None if nothing is.

    Checked in this order: finite positions and cell, finite energy and forces (when ``labels``), no two
    atoms closer than ``min_distance``.
    """
    where = frame.source or "structure"
    atom = _first_bad_row(frame.positions)
    if atom is not None:
        return f"{where}: atom {atom} has a non-finite position {frame.positions[atom].tolist()}"
    if frame.cell is not None and not np.isfinite(frame.cell).all():
        return f"{where}: the cell is not finite ({frame.cell.tolist()})"
    if labels and frame.energy is not None and not np.isfinite(frame.energy):
        return f"{where}: the energy is {frame.energy}"
    if labels and frame.forces is not None:
        atom = _first_bad_row(frame.forces)
        if atom is not None:
            return f"{where}: the force on atom {atom} is not finite ({frame.forces[atom].tolist()})"
    return overlap_problem(frame, min_distance)


def check_frames(frames: Sequence[Frame], labels: bool = True, min_distance: float = MIN_DISTANCE) -> None:
    """Raise a one-line ValueError for the first frame with a problem (see :func:`frame_problem`)."""
    for frame in frames:
        problem = frame_problem(frame, labels, min_distance)
        if problem is not None:
            raise ValueError(problem)

