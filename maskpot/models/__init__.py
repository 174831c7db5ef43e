"""Backbones (PaiNN, EGNN energy-centric; GNS force-centric) and heads.
The contract every backbone follows (all TorchScript-scriptable, float32 or float64):

    backbone(species_index, edge_index, edge_vec, mask_flag) -> (s, v)

    species_index: (N,) int64 index into ``config.species`` (the atomic numbers the model knows)
    edge_index:    (2, E) int64 pairs (i, j), both directions present; messages flow j -> i
    edge_vec:      (E, 3) r_j - r_i (+ periodic shift), Angstrom; only |edge_vec| < cutoff is required
    mask_flag:     optional (N,) float 0/1 marking atoms of masked molecules (adds a learned mask embedding)
    s:             (N, F) invariant scalar features
    v:             (N, 3, F) equivariant vector features

A ``Potential`` (backbone + head + physical priors such as the short-range repulsion) returns per-atom energies
(eV) and per-atom vectors: energy-centric models give forces as -dE/dx; the force-centric GNS returns forces
(eV/Angstrom) directly.
"""

from maskpot.models.config import ModelConfig, resolve_avg_neighbors

_LAZY = {"build_backbone": "build", "build_potential": "build", "Potential": "potential",
         "species_indices": "potential"}


def __getattr__(name: str):
    """Load the torch-based parts on first use, so ``ModelConfig`` (and ``maskpot --help``) do not import torch."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"maskpot.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'maskpot.models' has no attribute {name!r}")

__all__ = ["ModelConfig", "Potential", "build_backbone", "build_potential", "species_indices"]
