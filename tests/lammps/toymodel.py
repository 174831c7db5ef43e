"""A smooth two-layer toy potential with only the one-call ``forward`` of maskpot's LAMMPS export (no layer-wise
interface, as files exported before it), plus its reference. The plugin runs such a file on one MPI rank (ghosts
folded) and refuses it on several; tests/lammps/test_lammps_module.py and tests/faults use it for that.

It is EAM-like with one extra layer, so the energy of an atom depends on its neighbours' neighbours:

    rho_i = sum_j w[s_j] exp(-r_ij) fc(r_ij)                                      (layer 1: density)
    E_i   = shift[s_i] + 1/2 sum_j morse_ij(r_ij) fc(r_ij) - k[s_i] sqrt(1 + rho_i)
            + c sum_j fc(r_ij) tanh(rho_j)                                          (layer 2: neighbours' density)

fc is a cosine cutoff, so energy and forces are smooth. Units: Angstrom, eV, eV/Angstrom.

The same ``atom_energies`` is evaluated two ways: by the TorchScript module on the graph LAMMPS builds (local
atoms with folded ghost edges), and by ``reference`` on the periodic structure with ASE's neighbour list over all
images. Both take forces and virial from gradients with respect to edge vectors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list
from torch import Tensor

from maskpot.export.metadata import element_masses, element_symbols

SPECIES = [8, 1]  # O, H: index 0, 1
CUTOFF = 4.0  # Angstrom


def parameters() -> dict[str, Tensor]:
    """Per-species (O, H) and per-pair parameters, float64."""
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    return {
        # Morse well depth (eV), width (1/A), position (A) for pairs OO, OH / HO, HH
        "morse_d": t([[0.02, 2.0], [2.0, 0.01]]),
        "morse_a": t([[1.5, 2.2], [2.2, 1.5]]),
        "morse_r0": t([[3.0, 1.0], [1.0, 1.6]]),
        "density_w": t([1.0, 0.5]),
        "embed": t([0.8, 0.3]),
        "shift": t([-2.0, -0.5]),
        "coupling": t(0.05),
    }


def cosine_cutoff(r: Tensor, cutoff: float) -> Tensor:
    return 0.5 * (torch.cos(math.pi * r / cutoff) + 1.0) * (r < cutoff).to(r.dtype)


def atom_energies(species_index: Tensor, edge_index: Tensor, vec: Tensor, n_atoms: int, cutoff: float,
                  morse_d: Tensor, morse_a: Tensor, morse_r0: Tensor, density_w: Tensor, embed: Tensor,
                  shift: Tensor, coupling: Tensor) -> Tensor:
    """Per-atom energies (eV) of ``n_atoms`` atoms for directed edges i -> j with vectors r_j - r_i (A)."""
    i, j = edge_index[0], edge_index[1]
    r = torch.linalg.norm(vec, dim=1)
    fc = cosine_cutoff(r, cutoff)
    si, sj = species_index[i], species_index[j]
    x = torch.exp(-morse_a[si, sj] * (r - morse_r0[si, sj]))
    pair = morse_d[si, sj] * (x * x - 2.0 * x) * fc
    zeros = torch.zeros(n_atoms, dtype=vec.dtype, device=vec.device)
    rho = zeros.index_add(0, i, density_w[sj] * torch.exp(-r) * fc)
    second = zeros.index_add(0, i, coupling * fc * torch.tanh(rho[j]))
    return (shift[species_index] + 0.5 * zeros.index_add(0, i, pair) - embed[species_index] * torch.sqrt(1.0 + rho)
            + second)


class ToyLammpsModel(torch.nn.Module):
    """The LAMMPS-target forward of maskpot's exporter, around ``atom_energies``."""

    def __init__(self, target: str = "lammps"):
        super().__init__()
        self.cutoff = CUTOFF
        self.species: List[int] = list(SPECIES)
        self.species_symbols: List[str] = element_symbols(self.species)
        self.species_masses: List[float] = element_masses(self.species)
        self.target = target
        self.energy_centric = True
        self.dtype = "float64"
        z_to_species_index = torch.full((119,), -1, dtype=torch.long)
        for index, z in enumerate(SPECIES):
            z_to_species_index[z] = index
        self.register_buffer("z_to_species_index", z_to_species_index)
        for name, value in parameters().items():
            self.register_buffer(name, value)

    def forward(self, positions: Tensor, atomic_numbers: Tensor, edge_index: Tensor, edge_shift: Tensor,
                n_local: int, compute_virial: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        species_index = self.z_to_species_index[atomic_numbers]
        vec = positions[edge_index[1]] - positions[edge_index[0]] + edge_shift
        vec = vec.detach().requires_grad_(True)
        energies = atom_energies(species_index, edge_index, vec, positions.shape[0], self.cutoff, self.morse_d,
                                 self.morse_a, self.morse_r0, self.density_w, self.embed, self.shift, self.coupling)
        node_energy = energies[:n_local]
        energy = node_energy.sum()
        grads = torch.autograd.grad([energy], [vec], allow_unused=True)
        grad = grads[0]
        if grad is None:
            grad = torch.zeros_like(vec)
        forces = torch.zeros_like(positions).index_add(0, edge_index[0], grad).index_add(0, edge_index[1], -grad)
        virial = torch.zeros(6, dtype=positions.dtype)
        if compute_virial:
            w = -(vec.detach().unsqueeze(2) * grad.unsqueeze(1)).sum(0)  # -sum_e r_e (x) dE/dr_e
            virial = torch.stack([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
        return energy.detach(), node_energy.detach(), forces.detach(), virial.detach()


def save_toy_model(path: str | Path, target: str = "lammps") -> Path:
    """Script and save the toy model with the exporter's metadata file; returns the path."""
    path = Path(path)
    module = torch.jit.script(ToyLammpsModel(target))
    metadata = {"format": "maskpot-export", "target": target, "cutoff": CUTOFF,
                "species": SPECIES, "energy_centric": True, "dtype": "float64", "units": {"length": "Angstrom",
                                                                                        "energy": "eV"}}
    torch.jit.save(module, str(path), _extra_files={"metadata.json": json.dumps(metadata)})
    return path


def reference(atoms: Atoms) -> dict[str, np.ndarray]:
    """Energy (eV), per-atom energies, forces (eV/A) and virial W = sum r (x) F (3x3, eV) of a periodic ``atoms``.

    Edges come from ASE's neighbour list over all periodic images within the cutoff; forces and virial from the
    gradient with respect to the edge vectors.
    """
    i, j, shifts = neighbor_list("ijS", atoms, CUTOFF)
    z_to_species_index = {z: index for index, z in enumerate(SPECIES)}
    species_index = torch.tensor([z_to_species_index[int(z)] for z in atoms.numbers], dtype=torch.long)
    pos = torch.tensor(atoms.positions, dtype=torch.float64)
    cell = torch.tensor(np.array(atoms.cell), dtype=torch.float64)
    edge_index = torch.tensor(np.stack([i, j]), dtype=torch.long)
    vec = (pos[edge_index[1]] - pos[edge_index[0]] + torch.tensor(shifts, dtype=torch.float64) @ cell)
    vec.requires_grad_(True)
    energies = atom_energies(species_index, edge_index, vec, len(atoms), CUTOFF, **parameters())
    energy = energies.sum()
    (grad,) = torch.autograd.grad(energy, vec)
    forces = torch.zeros_like(pos).index_add(0, edge_index[0], grad).index_add(0, edge_index[1], -grad)
    virial = -(vec.detach().unsqueeze(2) * grad.unsqueeze(1)).sum(0)
    return {"energy": float(energy.detach()), "energies": energies.detach().numpy(), "forces": forces.numpy(),
            "virial": virial.numpy()}
