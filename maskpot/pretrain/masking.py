"""Masking hydrogens, as in Zhang, Li, Barati Farimani (arXiv 2402.15921), generalised beyond water.

A "group" is a heavy atom together with the hydrogens bonded to it (``hydrogen_parents``); for water a group is
exactly one molecule. A fraction ``mask_ratio`` of the groups that own at least one H is picked; in each picked
group one of its hydrogens (chosen uniformly, a coin flip for water) is removed from the frame entirely; the group's
remaining atoms (heavy atom and other H) get ``mask_flag = 1`` and, as target, the unit vector from the atom to
the removed hydrogen (minimum image under periodic boundaries). Hydrogens without a heavy parent are never removed.

All functions here are pure: they take a frame and a random generator and return new arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase.geometry import find_mic

from maskpot.data.frame import Frame
from maskpot.data.molecules import hydrogen_parents


@dataclass
class MaskedFrame:
    """Result of masking one frame.

    Attributes:
        frame: the reduced frame (removed hydrogens gone; no energy/forces labels).
        mask_flag: (N',) float64, 1 on the remaining atoms of picked groups.
        target: (N', 3) unit vectors to the removed hydrogen on flagged atoms, zeros elsewhere.
        removed: original indices of the removed hydrogens (one per picked group), sorted.
        kept: (N',) original index of each atom of the reduced frame.
    """

    frame: Frame
    mask_flag: np.ndarray
    target: np.ndarray
    removed: np.ndarray
    kept: np.ndarray


def mask_groups(parents: np.ndarray) -> dict[int, np.ndarray]:
    """Heavy atom index -> indices of its bonded hydrogens, for heavy atoms with at least one H."""
    groups: dict[int, list[int]] = {}
    for h in np.flatnonzero(parents >= 0):
        groups.setdefault(int(parents[h]), []).append(int(h))
    return {k: np.asarray(v, dtype=np.int64) for k, v in sorted(groups.items())}


def mask_frame(frame: Frame, mask_ratio: float, rng: np.random.Generator,
               parents: np.ndarray | None = None) -> MaskedFrame:
    """Remove one H from a fraction ``mask_ratio`` of the H-bearing groups of ``frame`` (see module docstring).

    Args:
        frame: input structure (Angstrom).
        mask_ratio: fraction in (0, 1] of groups to mask; at least one group is masked when any exists.
        rng: random generator (which groups, which hydrogen).
        parents: precomputed ``hydrogen_parents(frame)`` (it only depends on the geometry).
    """
    if not 0.0 < mask_ratio <= 1.0:
        raise ValueError(f"mask ratio must be in (0, 1], got {mask_ratio}")
    parents = hydrogen_parents(frame) if parents is None else np.asarray(parents)
    groups = mask_groups(parents)
    if not groups:
        raise ValueError(f"{frame.source or 'frame'}: no hydrogen bonded to a heavy atom, nothing to mask")
    heavy = np.fromiter(groups.keys(), dtype=np.int64)
    n_pick = min(len(heavy), max(1, int(round(mask_ratio * len(heavy)))))
    picked = np.sort(rng.choice(heavy, size=n_pick, replace=False))

    n = len(frame)
    removed = np.empty(n_pick, dtype=np.int64)
    flag_full = np.zeros(n)
    target_full = np.zeros((n, 3))
    for k, p in enumerate(picked):
        hs = groups[int(p)]
        h = int(hs[rng.integers(len(hs))])
        removed[k] = h
        members = np.concatenate([[p], hs[hs != h]])
        d, dist = find_mic(frame.positions[h] - frame.positions[members],
                           frame.cell if frame.cell is not None else np.zeros((3, 3)), frame.pbc)
        if np.any(dist < 1e-8):
            raise ValueError(f"{frame.source or 'frame'}: hydrogen {h} overlaps atom of its group")
        target_full[members] = d / dist[:, None]
        flag_full[members] = 1.0

    keep = np.ones(n, dtype=bool)
    keep[removed] = False
    kept = np.flatnonzero(keep)
    reduced = Frame(positions=frame.positions[kept], numbers=frame.numbers[kept], cell=frame.cell,
                    pbc=frame.pbc, source=f"{frame.source}(masked)" if frame.source else "masked")
    return MaskedFrame(frame=reduced, mask_flag=flag_full[kept], target=target_full[kept],
                       removed=np.sort(removed), kept=kept)


def masked_cosine_loss(pred: torch.Tensor, target: torch.Tensor, mask_flag: torch.Tensor) -> torch.Tensor:
    """1 - mean cosine similarity between predicted (N, 3) and target (N, 3) vectors over atoms with mask_flag=1."""
    sel = mask_flag > 0.5
    if not bool(sel.any()):
        raise ValueError("masked_cosine_loss: no flagged atoms")
    cos = torch.nn.functional.cosine_similarity(pred[sel], target[sel], dim=-1, eps=1e-8)
    return 1.0 - cos.mean()
