"""TorchScript wrappers, one per engine, around the shared ``ModelCore``.

Each wrapper only converts units and says how its engine gives the graph (positions and a cell for ASE and
OpenMM, edges for LAMMPS); the graph builder, the network, the species lookup, the force/virial computation and
the finiteness checks are the same code for all of them (``maskpot.export.core``).
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from maskpot.data.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM
from maskpot.export.core import ModelCore, check_positions
from maskpot.export.metadata import element_masses, element_symbols


class _Target(torch.nn.Module):
    """Metadata attributes readable from TorchScript, C++ (``module.attr``) and Python."""

    def __init__(self, potential: torch.nn.Module, species: List[int], dtype: str, target: str,
                 kernels: str = "reference"):
        super().__init__()
        self.core = ModelCore(potential)
        self.kernels: str = kernels  # maskpot.kernels: "fused" files need maskpot's operator library loaded
        self.cutoff: float = self.core.cutoff
        self.species: List[int] = list(species)
        # for engines that name elements (LAMMPS' pair_coeff) and check masses, so they need no table of their own
        self.species_symbols: List[str] = element_symbols(self.species)
        self.species_masses: List[float] = element_masses(self.species)
        self.energy_centric: bool = self.core.energy_centric
        self.dtype: str = dtype
        self.target: str = target
        self.model_dtype = torch.float64 if dtype == "float64" else torch.float32
        self.n_layers: int = int(potential.n_layers)
        self.state_width: int = int(potential.state_width)


class AseModel(_Target):
    """ASE target: ``forward(positions Å (N,3), atomic_numbers (N,), cell Å (3,3), pbc (3,) bool)``
    -> (energy eV, forces eV/Å (N,3), virial eV (3,3)); inputs and outputs in float64."""

    def forward(self, positions: Tensor, atomic_numbers: Tensor, cell: Tensor, pbc: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        pos = positions.to(self.model_dtype)
        species_index = self.core.species_index_of(atomic_numbers)
        energy, forces, virial = self.core.evaluate_structure(pos, species_index, cell.to(self.model_dtype), pbc)
        return energy.double(), forces.double(), virial.double()


class LammpsModel(_Target):
    """LAMMPS target (``pair_style maskpot``).

    ``forward(positions (M,3) float64 Å, atomic_numbers (M,) int64, edge_index (2,E) int64, edge_shift (E,3)
    float64 Å, n_local: int, compute_virial: bool) -> (energy () eV, node_energy (n_local,) eV, forces (M,3)
    eV/Å, virial (6,) eV)``; ``edge_index`` holds every pair closer than ``cutoff`` in both directions, with edge
    vector r_e = pos[j] - pos[i] + edge_shift. The pair style calls it on one MPI rank (``ghosts fold``) with
    M = n_local: a ghost neighbour j is replaced by its owner and edge_shift is x_ghost - x_owner.
    On several ranks (``ghosts exchange``) it calls the layer-wise methods below instead.

    energy is the float64 sum of the first n_local nodes' energies (= sum of compute pe/atom); the virial (xx,yy,zz,xy,xz,yz, = sum r_i F_i
    convention) is -sum_e r_e (x) dE/dr_e, exact with shifts. Force-centric models return their predicted
    forces on the local atoms and a zero virial. Edge vectors are formed in float64, then cast to ``dtype``.

    A non-finite position, energy or force raises (``maskpot.export.core``); the message numbers atoms as the
    nodes here (LAMMPS' local atom indices, not atom IDs).
    """

    def forward(self, positions: Tensor, atomic_numbers: Tensor, edge_index: Tensor, edge_shift: Tensor,
                n_local: int, compute_virial: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        pos = positions.to(torch.float64)
        check_positions(pos)
        species_index = self.core.species_index_of(atomic_numbers)
        edge_vec = (pos[edge_index[1]] - pos[edge_index[0]] + edge_shift.to(torch.float64)).to(self.model_dtype)
        _, node_energy, forces, w = self.core.evaluate(species_index, edge_index, edge_vec, n_local)
        node_energy = node_energy.double()
        virial = torch.stack([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
        if not compute_virial:
            virial = torch.zeros_like(virial)
        # summed in float64: a float32 sum of 10^4 atom energies of ~100 eV each would be off by ~0.1 eV
        return node_energy.sum(), node_energy, forces.double(), virial.double()

    # ---- one message-passing layer at a time (pair_maskpot on several MPI ranks; see maskpot.models.potential):
    # the pair style exchanges the node states of border atoms between layers and runs the backward pass
    # layer by layer, so each rank needs ghosts within one cutoff only. Edges go from every local atom i
    # (i < n_local) to its neighbours j (local or ghost); states are in ``dtype``. The priors (the short-range
    # repulsion) are part of ``node_outputs``, a function of the edge vectors too, so the pair style has no code
    # of its own for them.

    @torch.jit.export
    def edge_features(self, edge_vec: Tensor) -> Tensor:
        """(E,3) float64 edge vectors r_j - r_i (A) -> (E,G) edge features, differentiable."""
        return self.core.potential.edge_features(edge_vec.to(self.model_dtype))

    @torch.jit.export
    def initial_state(self, atomic_numbers: Tensor, feat: Tensor) -> Tuple[Tensor, Tensor]:
        """Node states (M, state_width) of all M atoms (local and ghost) and edge states before layer 0."""
        return self.core.potential.initial_state(self.core.species_index_of(atomic_numbers), feat, None)

    @torch.jit.export
    def layer_step(self, k: int, node: Tensor, edge: Tensor, feat: Tensor, edge_index: Tensor,
                   n_local: int) -> Tuple[Tensor, Tensor]:
        """Layer k: node states of all M atoms -> new states of the n_local local atoms, new edge states."""
        return self.core.potential.layer_step(k, node, edge, feat, edge_index, n_local)

    @torch.jit.export
    def node_outputs(self, node: Tensor, edge: Tensor, feat: Tensor, edge_index: Tensor, atomic_numbers: Tensor,
                     edge_vec: Tensor) -> Tuple[Tensor, Tensor]:
        """Final states of the n_local local atoms (node (n_local, state_width)), the atomic numbers of all M
        atoms and the float64 edge vectors (E,3) A (the priors' input) -> (node_energy (n_local,) eV, network and
        priors; node_vector (n_local,3) eV/A: the forces of a force-centric model), float64."""
        species_index = self.core.species_index_of(atomic_numbers)
        node_energy, node_vector = self.core.potential.readout(node, edge, feat, edge_index, species_index,
                                                               edge_vec.to(self.model_dtype))
        bad = ~(torch.isfinite(node_energy) & torch.isfinite(node_vector).all(dim=1))
        if bool(bad.any()):  # no edge vectors here to name the closest pair; the atom is the next best thing
            raise RuntimeError("maskpot: the model's energy or forces are not finite (NaN or inf) at local atom "
                               + str(int(torch.nonzero(bad)[0, 0])) + " (two atoms on the same spot?)")
        return node_energy.double(), node_vector.double()


class OpenMMModel(_Target):
    """OpenMM target: ``forward(positions nm (N,3), boxvectors nm (3,3) or None) -> (energy kJ/mol, forces
    kJ/mol/nm (N,3))``, for ``TorchForce.setOutputsForces(True)`` (``outputs_forces``; set by ``create_force``).
    Positions are float64 on the CPU/Reference platforms, float32 on CUDA single precision; outputs have their
    dtype. ``atomic_numbers`` (of the ML atoms) and ``atoms`` (their particle indices; empty means all
    particles) are set at export with a topology or by ``maskpot.openmm.create_force``. Forces outside the ML
    atoms are zero; a force-centric model's energy is 0."""

    def __init__(self, potential: torch.nn.Module, species: List[int], dtype: str, target: str,
                 kernels: str = "reference"):
        super().__init__(potential, species, dtype, target, kernels)
        self.register_buffer("atomic_numbers", torch.zeros(0, dtype=torch.long))
        self.register_buffer("atoms", torch.zeros(0, dtype=torch.long))
        self.nm_to_angstrom: float = NM_TO_ANGSTROM  # TorchScript cannot read module-level float constants
        self.kj_per_mol_per_ev: float = EV_TO_KJ_PER_MOL
        self.outputs_forces: bool = True

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        if self.atomic_numbers.numel() == 0:
            raise RuntimeError("maskpot: no atomic numbers set; use maskpot.openmm.create_force or export with --topology")
        pos = positions.to(self.model_dtype) * self.nm_to_angstrom
        if self.atoms.numel() > 0:
            pos = pos[self.atoms]
        if pos.shape[0] != self.atomic_numbers.shape[0]:
            raise RuntimeError("maskpot: the model was set up for " + str(self.atomic_numbers.shape[0])
                               + " atoms but the system has " + str(pos.shape[0]))
        species_index = self.core.species_index_of(self.atomic_numbers)
        pbc = torch.full((3,), boxvectors is not None, dtype=torch.bool)
        box: Optional[Tensor] = None
        if boxvectors is not None:
            box = boxvectors.to(self.model_dtype) * self.nm_to_angstrom
        energy, forces, _ = self.core.evaluate_structure(pos, species_index, box, pbc, self.atoms)
        forces = forces * (self.kj_per_mol_per_ev * self.nm_to_angstrom)  # eV/A -> kJ/mol/nm
        if self.atoms.numel() > 0:
            forces = torch.zeros((positions.shape[0], 3), dtype=forces.dtype, device=forces.device).index_copy(
                0, self.atoms, forces)
        return (energy * self.kj_per_mol_per_ev).to(positions.dtype), forces.to(positions.dtype)

