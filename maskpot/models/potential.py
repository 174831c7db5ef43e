"""Potential = network (backbone + head + per-species energy normalisation) + physical priors: the module every
engine wrapper calls.

As in TorchMD-Net, where the model is the network plus its priors, a physical term such as the short-range
repulsion (maskpot.models.repulsion) is part of the model, not of an engine. The Potential is written as the
four layer-wise steps of maskpot.models.backbone and ``forward`` composes them, so the whole-graph engines (ASE,
OpenMM, LAMMPS on one rank) and LAMMPS on several ranks (which calls the steps one by one) run the same code.
A prior is a function of the edge vectors: ``readout`` takes them beside the backbone's edge features and adds
the priors' energies to the heads'. So an engine that splits the graph needs no code of its own for priors: it
asks ``readout``'s gradient with respect to the edge vectors too, and adds it to theirs from the edge features.
(The edge vectors are not concatenated into the edge features: the gradient of every layer would then be
concatenated back, a copy of the whole edge tensor per layer.)
"""

from typing import Final, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from maskpot.models.compute import edge_vectors, forces_virial, graph_energy
from maskpot.models.heads import EnergyHead, VectorHead


# buffers renamed since checkpoints were first written: old name -> current name (loaded under either)
RENAMED_BUFFERS = {"energy_scale": "output_scale", "z_to_species": "z_to_species_index"}


def z_to_species_index_table(species: Sequence[int]) -> Tensor:
    """(119,) int64 lookup: atomic number -> index into ``species`` (-1 for elements the model does not know)."""
    table = torch.full((119,), -1, dtype=torch.int64)
    for k, z in enumerate(species):
        if not 0 < int(z) < 119:
            raise ValueError(f"invalid atomic number {z} in model species")
        table[int(z)] = k
    return table


def species_indices(numbers: Sequence[int] | np.ndarray, species: Sequence[int]) -> np.ndarray:
    """Atomic numbers (N,) -> species indices (N,) int64; one-line ValueError naming the first unknown element."""
    from ase.data import chemical_symbols

    numbers = np.asarray(numbers, dtype=np.int64)
    lookup = z_to_species_index_table(species).numpy()
    bad = (numbers < 1) | (numbers > 118)
    idx = np.full(numbers.shape, -1, dtype=np.int64)
    idx[~bad] = lookup[numbers[~bad]]
    unknown = np.flatnonzero(idx < 0)
    if unknown.size:
        a = int(unknown[0])
        z = int(numbers[a])
        name = chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"
        known = ", ".join(chemical_symbols[int(s)] for s in species)
        raise ValueError(f"unknown element {name} (atomic number {z}) at atom {a}; the model knows {known}")
    return idx


class Potential(nn.Module):
    """Network (backbone + head + normalisation) plus physical priors, written as the four layer-wise steps of
    maskpot.models.backbone; ``forward`` composes them on the whole graph.

    ``forward(species_index, edge_index, edge_vec, mask_flag) -> (node_energy (N,) eV, node_vector (N,3))``;
    ``species_index`` indexes ``species`` (the atomic numbers the model knows, in embedding order).
    Energy-centric (PaiNN, EGNN): node_energy = output_scale * head(s) + energy_shift[species_index] + the priors'
    energies, node_vector = 0; forces are -dE/dx (see maskpot.models.compute). Force-centric (GNS): node_vector =
    output_scale * head(v) is the force in eV/Angstrom and node_energy = 0; it takes no priors. ``output_scale``
    and ``energy_shift`` are the normalisation fitted on the training frames (maskpot.train.normalization).

    A prior is a module ``prior(species_index, edge_index, edge_vec, n_local) -> (n_local,) eV`` of the edges of
    the first n_local atoms (today the short-range repulsion); ``readout`` gives it the edge vectors.
    """

    energy_centric: Final[bool]
    cutoff: Final[float]
    receptive_field: Final[float]
    species: List[int]
    n_layers: int
    state_width: int

    def __init__(self, backbone: nn.Module, head: nn.Module, species: Sequence[int], cutoff: float,
                 energy_centric: bool, layers: int, priors: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        if len(priors) > 0 and not energy_centric:
            raise ValueError("physical priors (the short-range repulsion) need an energy-centric backbone "
                             "(painn, egnn), not gns")
        self.backbone = backbone
        self.head = head
        self.priors = nn.ModuleList(priors)
        self.energy_centric = energy_centric
        self.cutoff = float(cutoff)
        self.receptive_field = float(layers) * float(cutoff)
        self.species = [int(z) for z in species]
        self.n_layers = int(backbone.n_layers)
        self.state_width = int(backbone.state_width)
        self.register_buffer("z_to_species_index", z_to_species_index_table(species))
        self.register_buffer("energy_shift", torch.zeros(len(species)))
        self.register_buffer("output_scale", torch.ones(()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Also takes the buffers under their names of RENAMED_BUFFERS (state written before the renames)."""
        for old, new in RENAMED_BUFFERS.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, species_index: Tensor, edge_index: Tensor, edge_vec: Tensor,
                mask_flag: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        s, v = self.backbone(species_index, edge_index, edge_vec, mask_flag)
        return self.outputs(s, v, species_index, edge_index, edge_vec)

    @torch.jit.export
    def edge_features(self, edge_vec: Tensor) -> Tensor:
        """(E,3) edge vectors (A) -> the backbone's edge features (E, G)."""
        return self.backbone.edge_features(edge_vec)

    @torch.jit.export
    def initial_state(self, species_index: Tensor, feat: Tensor,
                      mask_flag: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Node states (N, state_width) and edge states before layer 0."""
        return self.backbone.initial_state(species_index, feat, mask_flag)

    @torch.jit.export
    def layer_step(self, k: int, node: Tensor, edge: Tensor, feat: Tensor, edge_index: Tensor,
                   n_local: int) -> tuple[Tensor, Tensor]:
        """Layer k: node states of all atoms -> new states of the first n_local atoms, new edge states."""
        return self.backbone.layer_step(k, node, edge, feat, edge_index[0], edge_index[1], n_local)

    @torch.jit.export
    def readout(self, node: Tensor, edge: Tensor, feat: Tensor, edge_index: Tensor, species_index: Tensor,
                edge_vec: Tensor) -> tuple[Tensor, Tensor]:
        """Final states of the n_local = node.shape[0] first atoms -> (node_energy (n_local,) eV: heads,
        normalisation and priors of the edge vectors ``edge_vec`` (E,3) A; node_vector (n_local,3) eV/A).
        ``species_index`` covers every atom an edge reaches (n_local or more)."""
        s, v = self.backbone.node_features(node, edge, feat, edge_index[0], node.shape[0])
        return self.outputs(s, v, species_index, edge_index, edge_vec)

    def outputs(self, s: Tensor, v: Tensor, species_index: Tensor, edge_index: Tensor,
              edge_vec: Tensor) -> tuple[Tensor, Tensor]:
        """Features s (n_local, F), v (n_local, 3, F') of the first n_local atoms -> (node_energy (n_local,) eV:
        heads, normalisation and priors of the edge vectors ``edge_vec`` (E,3) A; node_vector (n_local,3) eV/A)."""
        n_local = s.shape[0]
        if self.energy_centric:
            node_energy = self.output_scale * self.head(s) + self.energy_shift[species_index[:n_local]]
            for prior in self.priors:
                node_energy = node_energy + prior(species_index, edge_index, edge_vec, n_local)
            node_vector = torch.zeros((n_local, 3), dtype=s.dtype, device=s.device)
        else:
            node_vector = self.output_scale * self.head(v)
            node_energy = torch.zeros((n_local,), dtype=s.dtype, device=s.device)
        return node_energy, node_vector

    @torch.jit.export
    def is_energy_centric(self) -> bool:
        """``energy_centric`` for TorchScript callers (a Final attribute is a constant, not readable from outside)."""
        return self.energy_centric

    @torch.jit.export
    def energy_forces(self, positions: Tensor, species_index: Tensor, edge_index: Tensor, shifts: Tensor, batch: Tensor,
                      n_graphs: int, create_graph: bool,
                      mask_flag: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """See maskpot.models.compute.energy_forces: (energy (G,) eV, forces (N,3) eV/A, virial (G,3,3) eV)."""
        edge_vec = edge_vectors(positions, edge_index, shifts)
        n = positions.shape[0]
        if self.energy_centric:
            if not edge_vec.requires_grad:
                edge_vec.requires_grad_(True)
            node_energy, _ = self.forward(species_index, edge_index, edge_vec, mask_flag)
            energy = graph_energy(node_energy, batch, n_graphs)
            forces, virial = forces_virial(energy, edge_vec, edge_index, batch, n, n_graphs, create_graph)
        else:
            node_energy, forces = self.forward(species_index, edge_index, edge_vec, mask_flag)
            energy = graph_energy(node_energy, batch, n_graphs)
            virial = torch.zeros((n_graphs, 3, 3), dtype=positions.dtype, device=positions.device)
        if not create_graph:
            energy, forces, virial = energy.detach(), forces.detach(), virial.detach()
        return energy, forces, virial

    @torch.jit.export
    def species_index_of(self, numbers: Tensor) -> Tensor:
        """Atomic numbers (N,) int64 -> species indices; raises naming the atomic number the model does not know."""
        bad = (numbers < 1) | (numbers > 118)
        safe = torch.where(bad, torch.zeros_like(numbers), numbers)
        idx = torch.where(bad, torch.full_like(numbers, -1), self.z_to_species_index[safe])
        if bool((idx < 0).any()):
            a = int(torch.nonzero(idx < 0)[0, 0])
            raise ValueError("unknown element with atomic number " + str(int(numbers[a])) + " at atom " + str(a))
        return idx


def _head_for(energy_centric: bool, hidden: int) -> nn.Module:
    return EnergyHead(hidden) if energy_centric else VectorHead(hidden)
