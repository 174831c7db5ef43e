"""Accuracy of a potential on labelled frames: energy per atom (meV/atom) and force (meV/Angstrom) errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from maskpot.data.frame import Frame
from maskpot.train.batch import GraphBatch, NeighborCache, batches, collate
from maskpot.train.config import EVAL_BATCH_SIZE


def predict_batch(potential, batch: GraphBatch, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(energy (G,) eV, forces (N, 3) eV/Angstrom) of a batch via ``maskpot.models.compute.energy_forces``."""
    from maskpot.models.compute import energy_forces

    energy, forces, _ = energy_forces(potential, batch.positions, batch.species_index, batch.edge_index, batch.shifts,
                                      batch.batch, batch.n_graphs, create_graph)
    return energy, forces


@dataclass
class Predictions:
    """Flat arrays of reference and predicted labels (eV, eV/Angstrom)."""

    energy_ref: np.ndarray
    energy_pred: np.ndarray
    n_atoms: np.ndarray
    forces_ref: np.ndarray
    forces_pred: np.ndarray


def predict(potential, frames: Sequence[Frame], batch_size: int = EVAL_BATCH_SIZE,
            cache: NeighborCache | None = None) -> Predictions:
    """Run ``potential`` on labelled frames (all need energy and forces)."""
    species, cutoff, dtype = list(potential.species), float(potential.cutoff), potential.energy_shift.dtype
    for f in frames:
        if f.energy is None or f.forces is None:
            raise ValueError(f"{f.source or 'frame'}: evaluation needs energy and forces")
    e_ref, e_pred, n_at, f_ref, f_pred = [], [], [], [], []
    for idx in batches(len(frames), batch_size):
        b = collate([frames[k] for k in idx], cutoff, species, dtype, cache)
        energy, forces = predict_batch(potential, b, create_graph=False)
        e_ref.append(b.energy.numpy()); e_pred.append(energy.detach().cpu().numpy())
        n_at.append(b.n_atoms.numpy()); f_ref.append(b.forces.numpy()); f_pred.append(forces.detach().cpu().numpy())
    return Predictions(np.concatenate(e_ref), np.concatenate(e_pred), np.concatenate(n_at),
                       np.concatenate(f_ref), np.concatenate(f_pred))


def error_metrics(p: Predictions, energy_centric: bool = True) -> dict:
    """Energy MAE/RMSE per atom in meV/atom (None for force-centric models) and force MAE/RMSE in meV/Angstrom."""
    de = (p.energy_pred - p.energy_ref) / p.n_atoms * 1000.0
    df = (p.forces_pred - p.forces_ref) * 1000.0
    out = {
        "frames": int(len(p.energy_ref)),
        "atoms": int(p.n_atoms.sum()),
        "energy_mae": float(np.mean(np.abs(de))) if energy_centric else None,
        "energy_rmse": float(np.sqrt(np.mean(de ** 2))) if energy_centric else None,
        "force_mae": float(np.mean(np.abs(df))),
        "force_rmse": float(np.sqrt(np.mean(df ** 2))),
    }
    return out


def evaluate(potential, frames: Sequence[Frame], batch_size: int = EVAL_BATCH_SIZE,
             cache: NeighborCache | None = None) -> dict:
    """Errors of ``potential`` on ``frames``: keys frames, atoms, energy_mae, energy_rmse (meV/atom),
    force_mae, force_rmse (meV/Angstrom)."""
    return error_metrics(predict(potential, frames, batch_size, cache), bool(potential.energy_centric))
