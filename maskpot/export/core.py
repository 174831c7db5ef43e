"""The one TorchScript core every export target shares, so the targets cannot drift apart.

Units: Angstrom, eV, eV/Angstrom. The network, species lookup and force/virial algebra come from
``maskpot.models`` unchanged; this module only adds "energy of the first n nodes" (LAMMPS' local atoms,
whose graph also holds ghost atoms).
"""

from typing import Tuple

import torch
from torch import Tensor

from maskpot.models.compute import forces_virial


class ModelCore(torch.nn.Module):
    """Wraps a ``Potential`` for export: species lookup and energy/forces/virial of one graph."""

    def __init__(self, potential: torch.nn.Module):
        super().__init__()
        self.potential = potential
        self.energy_centric: bool = bool(potential.energy_centric)
        self.cutoff: float = float(potential.cutoff)

    def species_of(self, atomic_numbers: Tensor) -> Tensor:
        """Atomic numbers (N,) -> species indices; raises naming an element the model does not know."""
        return self.potential.species_from_numbers(atomic_numbers)

    def evaluate(self, species: Tensor, edge_index: Tensor, edge_vec: Tensor, n_energy: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Energy of the first ``n_energy`` nodes, their node energies, forces on all nodes and the virial (3,3).

        ``edge_vec`` (r_j - r_i, Angstrom) is detached and gradients are taken with respect to it, which gives
        forces and virial in one backward pass, exact also when ghost/image atoms are nodes of the graph.
        Force-centric models return their predicted forces on the first ``n_energy`` nodes and zero virial.
        TorchScript has no enable_grad(): callers must not run this under torch.no_grad().
        """
        n_nodes = species.shape[0]
        edge_vec = edge_vec.detach().requires_grad_(True)
        node_energy, node_vector = self.potential(species, edge_index, edge_vec, None)
        energy = node_energy[:n_energy].sum()
        if not self.energy_centric:
            forces = torch.zeros((n_nodes, 3), dtype=edge_vec.dtype, device=edge_vec.device)
            forces[:n_energy] = node_vector[:n_energy].detach()
            return energy.detach(), node_energy[:n_energy].detach(), forces, torch.zeros((3, 3), dtype=edge_vec.dtype)
        if not energy.requires_grad:
            raise RuntimeError("maskpot: forces need autograd; do not call the model under torch.no_grad()")
        batch = torch.zeros((n_nodes,), dtype=torch.long, device=species.device)
        forces, virial = forces_virial(energy.unsqueeze(0), edge_vec, edge_index, batch, n_nodes, 1, False)
        return energy.detach(), node_energy[:n_energy].detach(), forces.detach(), virial[0].detach()
