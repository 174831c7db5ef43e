"""Batches of frames as one disjoint graph: the tensors every model and loss consumes.

Edges come from ``maskpot.data.neighbors.neighbor_list`` (vesin). Shifts are stored in Cartesian Angstrom so the
edge vector is simply ``positions[j] - positions[i] + shifts``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional, Sequence

import numpy as np
import torch

from maskpot.data.frame import Frame
from maskpot.data.neighbors import neighbor_list
from maskpot.models.potential import species_indices


@dataclass
class GraphBatch:
    """A batch of G graphs with N atoms and E directed edges in total.

    Attributes:
        positions: (N, 3) Angstrom.
        species_index: (N,) int64 index into the model's species (atomic numbers).
        edge_index: (2, E) int64 (i, j) pairs, both directions.
        shifts: (E, 3) Cartesian periodic shift in Angstrom (edge vector = r_j - r_i + shift).
        batch: (N,) int64 graph index of each atom.
        n_graphs: G.
        n_atoms: (G,) int64 atoms per graph.
        mask_flag: (N,) float, 1 on atoms of masked molecules (pretraining), else None.
        energy: (G,) eV reference energies, None if any frame lacks one.
        forces: (N, 3) eV/Angstrom reference forces, None if any frame lacks them.
    """

    positions: torch.Tensor
    species_index: torch.Tensor
    edge_index: torch.Tensor
    shifts: torch.Tensor
    batch: torch.Tensor
    n_graphs: int
    n_atoms: torch.Tensor
    mask_flag: Optional[torch.Tensor] = None
    energy: Optional[torch.Tensor] = None
    forces: Optional[torch.Tensor] = None

    def edge_vectors(self) -> torch.Tensor:
        """(E, 3) r_j - r_i + shift, Angstrom (differentiable w.r.t. ``positions``)."""
        i, j = self.edge_index
        return self.positions[j] - self.positions[i] + self.shifts

    def to(self, device: torch.device | str) -> "GraphBatch":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in moved.items()}
        return replace(self, **moved)


class NeighborCache:
    """Neighbour lists of frames whose positions do not change between epochs (finetuning).

    Keyed by ``id(frame)``; an entry is reused only while the frame's positions and cell are unchanged.
    """

    def __init__(self) -> None:
        self._store: dict[int, tuple[Frame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def get(self, frame: Frame, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
        """(edge_index (2, E) int64, Cartesian shifts (E, 3) float64 Angstrom) for ``frame``."""
        hit = self._store.get(id(frame))
        if hit is not None and hit[0] is frame and np.array_equal(hit[1], frame.positions) \
                and (frame.cell is None or np.array_equal(hit[2], frame.cell)):
            return hit[3], hit[4]
        edges, shifts = frame_edges(frame, cutoff)
        cell = None if frame.cell is None else frame.cell.copy()
        self._store[id(frame)] = (frame, frame.positions.copy(), cell, edges, shifts)
        return edges, shifts

    def __len__(self) -> int:
        return len(self._store)


def frame_edges(frame: Frame, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges of one frame: (edge_index (2, E) int64, Cartesian shifts (E, 3) float64 Angstrom)."""
    i, j, s = neighbor_list(frame.positions, frame.cell, frame.pbc, cutoff)
    cell = frame.cell if frame.cell is not None else np.zeros((3, 3))
    shifts = np.asarray(s, dtype=np.float64).reshape(-1, 3) @ cell
    return np.stack([np.asarray(i, np.int64), np.asarray(j, np.int64)]), shifts


def frame_species_index(frame: Frame, species: Sequence[int]) -> np.ndarray:
    """Atomic numbers -> indices into ``species``; an unknown element is a ValueError naming the frame and atom."""
    try:
        return species_indices(frame.numbers, species)
    except ValueError as exc:
        raise ValueError(f"{frame.source or 'frame'}: {exc}") from None


def collate(frames: Sequence[Frame], cutoff: float, species: Sequence[int], dtype: torch.dtype = torch.float32,
            cache: NeighborCache | None = None, mask_flags: Sequence[np.ndarray] | None = None) -> GraphBatch:
    """Concatenate frames into one ``GraphBatch``.

    Args:
        frames: structures (positions Angstrom, energy eV, forces eV/Angstrom).
        cutoff: neighbour cutoff, Angstrom.
        species: the model's atomic numbers (embedding order).
        dtype: floating dtype of positions, shifts and labels.
        cache: reuse neighbour lists of unchanged frames (pass one per data set during finetuning).
        mask_flags: optional per-frame (N_f,) 0/1 arrays (pretraining).
    """
    if len(frames) == 0:
        raise ValueError("collate: no frames")
    pos, spc, edges, shifts, batch, counts = [], [], [], [], [], []
    offset = 0
    for g, frame in enumerate(frames):
        e, s = cache.get(frame, cutoff) if cache is not None else frame_edges(frame, cutoff)
        pos.append(frame.positions)
        spc.append(frame_species_index(frame, species))
        edges.append(e + offset)
        shifts.append(s)
        batch.append(np.full(len(frame), g, dtype=np.int64))
        counts.append(len(frame))
        offset += len(frame)
    has_energy = all(f.energy is not None for f in frames)
    has_forces = all(f.forces is not None for f in frames)
    t = lambda a: torch.as_tensor(np.concatenate(a), dtype=dtype)  # noqa: E731
    return GraphBatch(
        positions=t(pos),
        species_index=torch.as_tensor(np.concatenate(spc)),
        edge_index=torch.as_tensor(np.concatenate(edges, axis=1)),
        shifts=t(shifts),
        batch=torch.as_tensor(np.concatenate(batch)),
        n_graphs=len(frames),
        n_atoms=torch.as_tensor(counts, dtype=torch.int64),
        mask_flag=t(mask_flags) if mask_flags is not None else None,
        energy=torch.tensor([f.energy for f in frames], dtype=dtype) if has_energy else None,
        forces=t([f.forces for f in frames]) if has_forces else None,
    )


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Index chunks covering ``range(n)``, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[k:k + batch_size] for k in range(0, n, batch_size)]
