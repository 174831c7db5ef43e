"""A JSON-able description of a list of frames (sizes, species, label statistics). Units: eV, eV/Angstrom."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
from ase.data import chemical_symbols

from maskpot.data.frame import Frame

__all__ = ["summary"]


def summary(frames: Sequence[Frame]) -> dict:
    """Counts and label statistics; only plain Python types (JSON-able).

    Keys: n_frames, n_atoms_min, n_atoms_max, n_atoms_total, species ({symbol: atom count}), periodic ("all", "none"
    or "mixed"), has_energy, has_forces (True only if every frame has them), energy_per_atom_mean/std (eV),
    force_rms (eV/A, RMS over all components), force_max (eV/A, largest |F| of an atom); label statistics are None
    when absent.
    """
    if not frames:
        raise ValueError("summary: no frames")
    sizes = [len(f) for f in frames]
    counts = Counter()
    for f in frames:
        counts.update(int(z) for z in f.numbers)
    n_periodic = sum(f.periodic for f in frames)
    has_energy = all(f.energy is not None for f in frames)
    has_forces = all(f.forces is not None for f in frames)
    out = {
        "n_frames": len(frames),
        "n_atoms_min": min(sizes),
        "n_atoms_max": max(sizes),
        "n_atoms_total": int(sum(sizes)),
        "species": {chemical_symbols[z]: counts[z] for z in sorted(counts)},
        "periodic": "all" if n_periodic == len(frames) else "none" if n_periodic == 0 else "mixed",
        "has_energy": has_energy,
        "has_forces": has_forces,
        "energy_per_atom_mean": None,
        "energy_per_atom_std": None,
        "force_rms": None,
        "force_max": None,
    }
    if has_energy:
        per_atom = np.array([f.energy / len(f) for f in frames])
        out["energy_per_atom_mean"] = float(per_atom.mean())
        out["energy_per_atom_std"] = float(per_atom.std())
    if has_forces:
        forces = np.concatenate([f.forces for f in frames])
        out["force_rms"] = float(np.sqrt(np.mean(forces ** 2)))
        out["force_max"] = float(np.linalg.norm(forces, axis=1).max())
    return out
