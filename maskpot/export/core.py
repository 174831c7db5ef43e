"""The one TorchScript core every export target shares, so the targets cannot drift apart.

Units: Angstrom, eV, eV/Angstrom. The network, species lookup and force/virial algebra come from
``maskpot.models`` unchanged; this module adds "energy of the first n nodes" (LAMMPS' local atoms, whose graph
also holds ghost atoms), the graph of a structure given by positions and a cell (ASE, OpenMM), and the checks
every engine relies on: positions must be finite, and a non-finite energy or force stops the engine with an
error naming the closest pair of atoms instead of returning NaN. Structures (ASE, OpenMM) are evaluated with their
atoms in spatial order (``spatial_order``), which only changes where atoms sit in memory.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from maskpot.models.compute import forces_virial
from maskpot.models.neighbors import NeighborSearch, shift_vectors


def _atom_name(k: int, atom_ids: Optional[Tensor]) -> str:
    """Node k as the engine numbers it: ``atom_ids[k]`` when given (OpenMM's ML atoms of a larger system)."""
    if atom_ids is not None and atom_ids.numel() > 0:
        return str(int(atom_ids[k]))
    return str(k)


def check_positions(positions: Tensor, atom_ids: Optional[Tensor] = None) -> None:
    """Raise naming the first atom whose position is NaN or infinite."""
    bad = ~torch.isfinite(positions).all(dim=1)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0, 0])
        raise ValueError("maskpot: the position of atom " + _atom_name(k, atom_ids) + " is not finite (NaN or inf)")


def closest_pair(edge_index: Tensor, edge_vec: Tensor, atom_ids: Optional[Tensor] = None) -> str:
    """The shortest edge of the graph as "atoms i and j, d A apart"."""
    if edge_vec.shape[0] == 0:
        return "no two atoms are closer than the cutoff"
    d = torch.linalg.vector_norm(edge_vec.detach().double(), dim=1)
    k = int(torch.argmin(d))
    i, j = int(edge_index[0, k]), int(edge_index[1, k])
    if i > j:
        i, j = j, i
    return ("atoms " + _atom_name(i, atom_ids) + " and " + _atom_name(j, atom_ids) + ", "
            + _three_decimals(float(d[k])) + " A apart")


def _three_decimals(x: float) -> str:
    """``f"{x:.3f}"`` for x >= 0 (TorchScript has no format specifiers)."""
    if x != x or x > 1e12:
        return str(x)
    milli = int(x * 1000.0 + 0.5)
    frac = str(milli % 1000)
    while len(frac) < 3:
        frac = "0" + frac
    return str(milli // 1000) + "." + frac


def check_finite(energy: Tensor, forces: Tensor, edge_index: Tensor, edge_vec: Tensor,
                 atom_ids: Optional[Tensor] = None) -> None:
    """Raise when the energy or a force is NaN or infinite, naming the closest pair of atoms (the usual cause:
    two atoms on the same spot, or closer than anything the model was trained on)."""
    if not bool(torch.isfinite(energy).all()) or not bool(torch.isfinite(forces).all()):
        raise RuntimeError("maskpot: the model's energy or forces are not finite (NaN or inf); closest pair: "
                           + closest_pair(edge_index, edge_vec, atom_ids))


# Edge of the bins of spatial_order, Angstrom: about one atom per bin in condensed matter.
SORT_BIN_WIDTH = 1.0


def _spread_bits(x: Tensor) -> Tensor:
    """The low 21 bits of x (int64) spread to every third bit (bit b -> bit 3b), for Morton codes."""
    x = x & 0x1FFFFF
    x = (x | (x << 32)) & 0x1F00000000FFFF
    x = (x | (x << 16)) & 0x1F0000FF0000FF
    x = (x | (x << 8)) & 0x100F00F00F00F00F
    x = (x | (x << 4)) & 0x10C30C30C30C30C3
    x = (x | (x << 2)) & 0x1249249249249249
    return x


def spatial_order(positions: Tensor, bin_width: float = SORT_BIN_WIDTH) -> Tensor:
    """A permutation (N,) int64 of the atoms along a Z-order (Morton) curve through cubic bins of ``bin_width``
    Angstrom (positions (N,3) Angstrom, finite; ties keep their order). Atoms close in space end up close in
    memory, so the network's gathers of neighbour states (rows of N x features tensors) hit the CPU's caches
    instead of main memory; LAMMPS sorts its atoms for the same reason (``atom_modify sort``)."""
    if positions.shape[0] < 2:
        return torch.arange(positions.shape[0], device=positions.device)
    p = positions.detach()
    bins = torch.floor((p - p.min(dim=0).values) / bin_width).to(torch.int64).clamp(0, 0x1FFFFF)
    code = _spread_bits(bins[:, 0]) | (_spread_bits(bins[:, 1]) << 1) | (_spread_bits(bins[:, 2]) << 2)
    return torch.argsort(code, stable=True)


def unsort(x: Tensor, order: Tensor) -> Tensor:
    """Rows of x (computed for atoms ``order``) back in the caller's atom order: result[order[k]] = x[k]."""
    return torch.empty_like(x).index_copy_(0, order, x)


class ModelCore(torch.nn.Module):
    """Wraps a ``Potential`` for export: species lookup, the graph of positions and a cell, and energy/forces/virial
    of one graph. ``neighbors`` is the pure-torch search (``maskpot.models.neighbors``) or, in an export with fused
    kernels, the C++ operator (``maskpot.kernels.neighbors.use_fused_neighbors``): the same edges."""

    def __init__(self, potential: torch.nn.Module):
        super().__init__()
        self.potential = potential
        self.neighbors = NeighborSearch()
        self.energy_centric: bool = bool(potential.energy_centric)
        self.cutoff: float = float(potential.cutoff)

    def species_index_of(self, atomic_numbers: Tensor) -> Tensor:
        """Atomic numbers (N,) -> species indices; raises naming an element the model does not know."""
        return self.potential.species_index_of(atomic_numbers)

    def edges(self, positions: Tensor, cell: Optional[Tensor], pbc: Tensor) -> Tuple[Tensor, Tensor]:
        """edge_index (2,E) and edge vectors (E,3) r_j - r_i + shift (Angstrom) of every pair closer than the
        cutoff; ``positions`` (N,3, finite: see :func:`check_positions`) and ``cell`` (3,3, rows, or None: not
        periodic) in Angstrom, ``pbc`` (3,)."""
        box: Optional[Tensor] = cell if bool(pbc.any()) else None
        edge_index, shifts = self.neighbors(positions.detach(), box, pbc, self.cutoff)
        edge_vec = positions[edge_index[1]] - positions[edge_index[0]]
        if box is not None:
            edge_vec = edge_vec + shift_vectors(shifts, box)
        return edge_index, edge_vec

    def evaluate_structure(self, positions: Tensor, species_index: Tensor, cell: Optional[Tensor], pbc: Tensor,
                           atom_ids: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Energy (eV), forces (N,3) eV/Angstrom in the caller's atom order and virial (3,3) eV of the structure
        ``positions`` (N,3) Angstrom with ``species_index`` (N,), ``cell`` (3,3 rows, Angstrom; None or pbc all
        False: not periodic): :meth:`edges` and :meth:`evaluate` on the atoms in :func:`spatial_order`.
        ``atom_ids`` names the atoms in error messages (default: their index)."""
        check_positions(positions, atom_ids)
        order = spatial_order(positions)
        ids = order if atom_ids is None or atom_ids.numel() == 0 else atom_ids[order]
        edge_index, edge_vec = self.edges(positions[order], cell, pbc)
        energy, _, forces, virial = self.evaluate(species_index[order], edge_index, edge_vec, positions.shape[0],
                                                  ids)
        return energy, unsort(forces, order), virial

    def evaluate(self, species_index: Tensor, edge_index: Tensor, edge_vec: Tensor, n_local: int,
                 atom_ids: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`compute`, then a non-finite energy or force raises (:func:`check_finite`; ``atom_ids`` names
        the nodes in the message)."""
        energy, node_energy, forces, virial = self.compute(species_index, edge_index, edge_vec, n_local)
        check_finite(energy, forces, edge_index, edge_vec, atom_ids)
        return energy, node_energy, forces, virial

    def compute(self, species_index: Tensor, edge_index: Tensor, edge_vec: Tensor,
                n_local: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Energy of the first ``n_local`` nodes, their node energies, forces on all nodes and the virial (3,3).

        ``edge_vec`` (r_j - r_i, Angstrom) is detached and gradients are taken with respect to it, which gives
        forces and virial in one backward pass, exact also when ghost/image atoms are nodes of the graph.
        Force-centric models return their predicted forces on the first ``n_local`` nodes and zero virial.
        No checks that depend on the values (AOTInductor packages trace this function; their loaders check).
        TorchScript has no enable_grad(): callers must not run this under torch.no_grad().
        """
        n_nodes = species_index.shape[0]
        edge_vec = edge_vec.detach().requires_grad_(True)
        node_energy, node_vector = self.potential(species_index, edge_index, edge_vec, None)
        energy = node_energy[:n_local].sum()
        if not self.energy_centric:
            forces = torch.zeros((n_nodes, 3), dtype=edge_vec.dtype, device=edge_vec.device)
            forces[:n_local] = node_vector[:n_local].detach()
            virial = torch.zeros((3, 3), dtype=edge_vec.dtype, device=edge_vec.device)
            return energy.detach(), node_energy[:n_local].detach(), forces, virial
        if not energy.requires_grad:
            raise RuntimeError("maskpot: forces need autograd; do not call the model under torch.no_grad()")
        batch = torch.zeros((n_nodes,), dtype=torch.long, device=species_index.device)
        forces, virial = forces_virial(energy.unsqueeze(0), edge_vec, edge_index, batch, n_nodes, 1, False)
        return energy.detach(), node_energy[:n_local].detach(), forces.detach(), virial[0].detach()
