"""Energy normalisation fitted on training frames.

``shift`` (eV per atom, one per species) is the least-squares fit of total energies on composition; ``lstsq``
returns the minimum-norm solution, which matters when compositions are collinear (every water frame has the
same O:H ratio, so only the combination per molecule is determined). ``scale`` (eV, or eV/Angstrom) is the RMS of
the force components when forces are known, else the std of the per-atom residual energy. The potential outputs
``node_energy = scale * raw + shift[species_index]`` (buffers ``output_scale`` and ``energy_shift``), and a
force-centric one ``forces = scale * raw``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from maskpot.data.frame import Frame


@dataclass
class Normalization:
    """Per-species energy shift (eV/atom, in the model's species order) and a global scale."""

    shift: list[float]
    scale: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(shift=[float(x) for x in d["shift"]], scale=float(d["scale"]))

    def apply_to(self, potential) -> None:
        """Write shift and scale into the potential's ``energy_shift`` and ``output_scale`` buffers."""
        import torch

        with torch.no_grad():
            potential.energy_shift.copy_(torch.as_tensor(self.shift, dtype=potential.energy_shift.dtype))
            potential.output_scale.fill_(self.scale)


def composition(frames: Sequence[Frame], species: Sequence[int]) -> np.ndarray:
    """(F, S) count of each species in each frame."""
    species = list(species)
    return np.array([[np.count_nonzero(f.numbers == z) for z in species] for f in frames], dtype=np.float64)


def fit_normalization(frames: Sequence[Frame], species: Sequence[int]) -> Normalization:
    """Fit shift and scale on frames with energies (see module docstring)."""
    labelled = [f for f in frames if f.energy is not None]
    for f in frames:
        if (f.energy is not None and not np.isfinite(f.energy)) or (f.forces is not None and not np.isfinite(f.forces).all()):
            raise ValueError(f"{f.source or 'frame'}: energy or forces are not finite (NaN/inf label)")
    if not labelled:
        raise ValueError("normalization: no training frame has an energy")
    counts = composition(labelled, species)
    energies = np.array([f.energy for f in labelled])
    shift, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    forces = [f.forces for f in labelled if f.forces is not None]
    if forces:
        scale = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
    else:
        per_atom = (energies - counts @ shift) / counts.sum(axis=1)
        scale = float(np.std(per_atom))
    if not np.isfinite(scale) or scale <= 1e-12:
        scale = 1.0
    return Normalization(shift=[float(x) for x in shift], scale=scale)
