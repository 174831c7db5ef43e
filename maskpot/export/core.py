"""The one TorchScript core every export target shares, so the targets cannot drift apart.

All functions here are scripted into the exported file. Units: Angstrom, eV, eV/Angstrom.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor


def lookup_species(z_to_species: Tensor, atomic_numbers: Tensor) -> Tensor:
    """Map atomic numbers (N,) to the model's species indices; raise naming the first unknown element."""
    if atomic_numbers.numel() == 0:
        return atomic_numbers
    if int(atomic_numbers.min()) < 0 or int(atomic_numbers.max()) >= z_to_species.shape[0]:
        raise RuntimeError("maskpot: atomic number out of range 0..118")
    species = z_to_species[atomic_numbers]
    unknown = species < 0
    if bool(unknown.any()):
        z = int(atomic_numbers[unknown][0])
        raise RuntimeError("maskpot: element with atomic number " + str(z) + " is not known to this model")
    return species


def forces_virial_from_edge_grad(grad: Tensor, edge_vec: Tensor, edge_index: Tensor, n_nodes: int) -> Tuple[Tensor, Tensor]:
    """Forces (n_nodes, 3) and virial (3, 3) from dE/d(edge_vec), with edge_vec = r_j - r_i.

    dE/dr_j = +g and dE/dr_i = -g, so F_i += g and F_j -= g. The virial is W = -sum_e r_e (x) g_e
    (LAMMPS' sum_i r_i F_i convention, eV); the ASE stress is -W / volume.
    """
    forces = torch.zeros((n_nodes, 3), dtype=grad.dtype, device=grad.device)
    forces = forces.index_add(0, edge_index[0], grad).index_add(0, edge_index[1], -grad)
    virial = -(edge_vec.unsqueeze(2) * grad.unsqueeze(1)).sum(0)
    return forces, virial


class ModelCore(torch.nn.Module):
    """Wraps a ``Potential``: species lookup and energy/forces/virial from one graph, shared by all targets."""

    def __init__(self, potential: torch.nn.Module):
        super().__init__()
        self.potential = potential
        self.energy_centric: bool = bool(potential.energy_centric)
        self.cutoff: float = float(potential.cutoff)

    def species_of(self, atomic_numbers: Tensor) -> Tensor:
        return lookup_species(self.potential.z_to_species, atomic_numbers)

    def evaluate(self, species: Tensor, edge_index: Tensor, edge_vec: Tensor, n_energy: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Energy of the first ``n_energy`` nodes, their node energies, forces on all nodes and the virial.

        ``edge_vec`` (r_j - r_i, Angstrom) is detached and gradients are taken with respect to it, which gives
        forces and virial in one backward pass (exact also when ghost/image atoms are nodes of the graph).
        Force-centric models return their predicted forces on the first ``n_energy`` nodes and zero virial.
        """
        n_nodes = species.shape[0]
        # TorchScript has no enable_grad(): callers must not run the model under torch.no_grad().
        edge_vec = edge_vec.detach().requires_grad_(True)
        node_energy, node_vector = self.potential(species, edge_index, edge_vec, None)
        energy = node_energy[:n_energy].sum()
        grads: List[Optional[Tensor]] = [None]
        if self.energy_centric:
            if not energy.requires_grad:
                raise RuntimeError("maskpot: forces need autograd; do not call the model under torch.no_grad()")
            grads = torch.autograd.grad([energy], [edge_vec], allow_unused=True)
        if not self.energy_centric:
            forces = torch.zeros((n_nodes, 3), dtype=edge_vec.dtype, device=edge_vec.device)
            forces[:n_energy] = node_vector[:n_energy].detach()
            return energy.detach(), node_energy[:n_energy].detach(), forces, torch.zeros((3, 3), dtype=edge_vec.dtype)
        grad: Optional[Tensor] = grads[0]
        if grad is None:
            grad = torch.zeros_like(edge_vec)
        forces, virial = forces_virial_from_edge_grad(grad, edge_vec.detach(), edge_index, n_nodes)
        return energy.detach(), node_energy[:n_energy].detach(), forces, virial
