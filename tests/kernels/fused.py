"""What the fused-operator tests share: frozen reference models, fused copies of them, and the comparison of the
two on whole frames (energies, forces, virials, node energies)."""

from __future__ import annotations

import copy
from typing import Callable

import torch

from tests.models import battery as B

TOL = {"float64": 1e-10, "float32": 1e-5}  # fused against reference, relative to the size of the compared quantity


def frozen(model: B.Model) -> B.Model:
    for p in model.potential.parameters():
        p.requires_grad_(False)
    return model


def fused_copy(model: B.Model, use_fused: Callable[[torch.nn.Module], int]) -> B.Model:
    """``model`` with ``use_fused`` (maskpot.kernels.painn or .egnn) applied to a copy: every layer switched."""
    potential = copy.deepcopy(model.potential)
    assert use_fused(potential) == len(potential.backbone.layers)
    return B.Model(model.backbone, model.dtype, potential)


def check_matches_reference(model: B.Model, fused: B.Model, frames: list[B.Frame]) -> None:
    tol = TOL[model.dtype]
    for frame in frames:
        ref, out = B.one(model, frame), B.one(fused, frame)
        B.nontrivial(ref.forces, "forces")
        B.close(out.energy, ref.energy, tol, "energy")
        B.close(out.forces, ref.forces, tol, "forces")
        B.close(out.virial, ref.virial, tol, "virial")
        B.close(out.node_energy, ref.node_energy, tol, "node energies")
