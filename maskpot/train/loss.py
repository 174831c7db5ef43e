"""Finetuning loss: ``w_E * L1(per-atom energy) + w_F * L1(forces)``, both divided by the normalisation scale.

Energies are compared per atom, ``(E_pred - E_ref) / n_atoms / scale``; forces component-wise,
``(F_pred - F_ref) / scale``. Dividing by ``scale`` makes the two terms dimensionless and of similar size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class LossWeights:
    """w_E and w_F (FinetuneConfig holds their defaults)."""

    energy: float
    forces: float


def energy_force_loss(energy: Optional[torch.Tensor], forces: Optional[torch.Tensor], ref_energy, ref_forces,
                      n_atoms: torch.Tensor, scale: float, weights: LossWeights) -> torch.Tensor:
    """The weighted L1 loss; a term is skipped when its prediction or reference is None or its weight is 0."""
    terms = []
    if weights.energy > 0 and energy is not None and ref_energy is not None:
        per_atom = (energy - ref_energy) / n_atoms.to(energy.dtype)
        terms.append(weights.energy * per_atom.abs().mean() / scale)
    if weights.forces > 0 and forces is not None and ref_forces is not None:
        terms.append(weights.forces * (forces - ref_forces).abs().mean() / scale)
    if not terms:
        raise ValueError("loss: no energy or force term (missing labels or zero weights)")
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]
