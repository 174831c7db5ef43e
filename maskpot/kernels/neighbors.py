"""The neighbour search of exported ASE and OpenMM files on the C++ operator ``torch.ops.maskpot.neighbor_pairs``
(maskpot/kernels/csrc/neighbor_pairs.cpp): the contract and edge set of ``maskpot.models.neighbors.neighbor_pairs``.
``use_fused_neighbors(module)`` swaps it into every ``NeighborSearch`` of a module, with the edges laid out in pairs
(edge 2k + 1 the reverse of 2k: the layout whose pairs PaiNN's fused message step computes with one filter);
``neighbor_search()`` gives Python callers the operator where the library is built, edges sorted by (i, j, shift).
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor, nn

from maskpot.models.neighbors import NeighborSearch, neighbor_pairs


class FusedNeighborSearch(nn.Module):
    """``NeighborSearch`` on the C++ cell list on the CPU (on other devices, OpenMM's CUDA platform, the pure-torch
    search). Positions (N,3) and cell (3,3, rows, or None) in Angstrom, pbc (3,) bool, cutoff Angstrom ->
    edge_index (2,E) int64, integer cell shifts (E,3) in positions' dtype, in pairs (2k + 1 the reverse of 2k) on
    the CPU. No autograd: pass detached positions."""

    def forward(self, positions: Tensor, cell: Optional[Tensor], pbc: Tensor, cutoff: float) -> Tuple[Tensor, Tensor]:
        if positions.device.type != "cpu":
            return neighbor_pairs(positions, cell, pbc, cutoff)
        edge_index, shifts = torch.ops.maskpot.neighbor_pairs(positions, cell, pbc, cutoff, True)
        return edge_index, shifts


def use_fused_neighbors(module: nn.Module) -> int:
    """Replace every ``NeighborSearch`` inside ``module`` by the C++ operator (in place; loads the operator
    library). Returns how many were switched."""
    from maskpot import kernels

    parents = [(parent, name) for parent in module.modules() for name, child in parent.named_children()
               if isinstance(child, NeighborSearch)]
    for parent, name in parents:
        setattr(parent, name, FusedNeighborSearch())
    if parents:
        kernels.load()
    return len(parents)


def neighbor_search() -> Callable[[Tensor, Optional[Tensor], Tensor, float], Tuple[Tensor, Tensor]]:
    """For Python callers on the CPU (the AOTInductor loader): the C++ operator where the kernels library is built
    (loading it), else the pure-torch search; the same edges either way."""
    from maskpot import kernels

    if not kernels.available():
        return neighbor_pairs
    kernels.load()
    return torch.ops.maskpot.neighbor_pairs
