"""Energies, forces and virials from per-edge energy gradients (pure, TorchScript-scriptable functions).

For an energy-centric potential, g_e = dE/dr_e for edge vectors r_e = x_j - x_i + shift_e. Since
dr_e/dx_j = +1 and dr_e/dx_i = -1, the forces F = -dE/dx are F_i += g_e, F_j -= g_e, and the virial
W = -sum_e r_e (x) g_e (eV; LAMMPS sum_i r_i (x) F_i convention, also right under periodic shifts; the ASE
stress is -W / volume).

``energy_forces(potential, ...)`` is the entry point. Inside TorchScript call ``potential.energy_forces(...)``
(the same code as an exported method): TorchScript compiles a free function that takes a module for one
module type only, so a scripted wrapper must not pass different Potentials to a free function.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor


def edge_vectors(positions: Tensor, edge_index: Tensor, shifts: Tensor) -> Tensor:
    """(E,3) r_j - r_i + shift in Angstrom (shifts cartesian, Angstrom)."""
    return positions[edge_index[1]] - positions[edge_index[0]] + shifts


def graph_energy(node_energy: Tensor, batch: Tensor, n_graphs: int) -> Tensor:
    """(G,) sum of per-atom energies per graph."""
    return torch.zeros((n_graphs,), dtype=node_energy.dtype, device=node_energy.device).index_add(0, batch, node_energy)


def edge_forces(g: Tensor, edge_index: Tensor, n_atoms: int) -> Tensor:
    """Forces (N,3) eV/Angstrom from per-edge energy gradients g (E,3) = dE/dr_e: F_i += g_e, F_j -= g_e."""
    i, j = edge_index[0], edge_index[1]
    return torch.zeros((n_atoms, 3), dtype=g.dtype, device=g.device).index_add(0, i, g).index_add(0, j, -g)


def forces_virial(energy: Tensor, edge_vec: Tensor, edge_index: Tensor, batch: Tensor, n_atoms: int,
                  n_graphs: int, create_graph: bool) -> Tuple[Tensor, Tensor]:
    """Forces (N,3) eV/Angstrom and virial (G,3,3) eV from autograd of ``energy`` (G,) w.r.t. ``edge_vec``."""
    grad_outputs: List[Optional[Tensor]] = [torch.ones_like(energy)]
    grads = torch.autograd.grad([energy], [edge_vec], grad_outputs=grad_outputs, create_graph=create_graph,
                                allow_unused=True)
    g = grads[0]
    if g is None:  # no edges reach the energy
        g = torch.zeros_like(edge_vec)
    forces = edge_forces(g, edge_index, n_atoms)
    if n_graphs == 1:  # -sum_e r_a g_b as one (3,E) x (E,3) product, without the (E,3,3) outer products
        return forces, -(edge_vec.t() @ g).unsqueeze(0)
    w_edge = -(edge_vec.unsqueeze(-1) * g.unsqueeze(-2))  # (E,3,3): -r_a g_b
    virial = torch.zeros((n_graphs, 3, 3), dtype=g.dtype, device=g.device).index_add(0, batch[edge_index[0]], w_edge)
    return forces, virial


def energy_forces(potential: torch.nn.Module, positions: Tensor, species_index: Tensor, edge_index: Tensor,
                  shifts: Tensor, batch: Tensor, n_graphs: int, create_graph: bool,
                  mask_flag: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Energy (G,) eV, forces (N,3) eV/Angstrom and virial (G,3,3) eV of ``n_graphs`` structures.

    positions (N,3) Angstrom; species_index (N,) int64 indices into the model's species; edge_index (2,E) pairs
    (i, j); shifts (E,3) cartesian periodic shifts in Angstrom; batch (N,) graph index of each atom.
    ``create_graph=True`` keeps the graph of the outputs (training); otherwise all outputs are detached.
    Autograd must be enabled (inside ``torch.no_grad()`` wrap the call in ``torch.enable_grad()``).
    Force-centric potentials return their node vectors as forces, zero energies (unless trained) and zero virial.
    """
    return potential.energy_forces(positions, species_index, edge_index, shifts, batch, n_graphs, create_graph,
                                   mask_flag)
