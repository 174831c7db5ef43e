"""Energies and forces of a training batch through ``torch.compile``: the function of
``maskpot.models.compute.energy_forces(create_graph=True)``, with the parameter gradients of any loss of it, in
fewer and fused kernels (``FinetuneConfig.compile``, ``maskpot finetune --compile``).

A training step differentiates the forces, themselves a gradient, with respect to the weights. Eager autograd
runs that as hundreds of separate elementwise kernels over (edges x features) tensors; inductor fuses them.
Inside the compiled function the forces come from ``torch.func.grad`` (dynamo traces it; ``torch.autograd.grad``
would break the graph), and AOTAutograd derives the backward of the whole.

Shapes are static: each batch is padded up to a bucket of atoms and edges (at most 1/8 more of each), so a run
compiles once per bucket and not once per batch (with dynamic shapes, functorch's grad inside dynamo hits an
internal assert of torch 2.9). Padding atoms form one extra graph; padding edges join padding atoms only
(self-edges with a shift of half the cutoff, so every edge vector is finite), so no real atom receives a message
from them; the outputs of the padding are dropped outside the compiled function.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from maskpot.models.compute import edge_forces, edge_vectors, graph_energy
from maskpot.train.batch import GraphBatch

log = logging.getLogger(__name__)


def bucket(n: int) -> int:
    """The smallest multiple of 2**(floor(log2 n) - 3) that is >= n (at least 8): 8 buckets per octave."""
    if n <= 8:
        return 8
    step = 2 ** (int(math.log2(n)) - 3)
    return -(-n // step) * step


def pad(batch: GraphBatch, cutoff: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """(positions, species_index, edge_index, shifts, graph index, mask_flag) padded to buckets: at least one
    padding atom, in graph ``batch.n_graphs``; padding edges are self-edges of padding atoms."""
    n, e = batch.positions.shape[0], batch.edge_index.shape[1]
    n_pad, e_pad = bucket(n + 1), bucket(e)
    extra_atoms, extra_edges = n_pad - n, e_pad - e
    positions = torch.cat([batch.positions, batch.positions.new_zeros((extra_atoms, 3))])
    species_index = torch.cat([batch.species_index, batch.species_index.new_zeros(extra_atoms)])
    graph = torch.cat([batch.batch, batch.batch.new_full((extra_atoms,), batch.n_graphs)])
    ends = n + torch.arange(extra_edges, dtype=batch.edge_index.dtype) % extra_atoms
    edge_index = torch.cat([batch.edge_index, torch.stack([ends, ends])], dim=1)
    shift = batch.shifts.new_tensor([0.5 * cutoff, 0.0, 0.0])
    shifts = torch.cat([batch.shifts, shift.expand(extra_edges, 3)])
    mask_flag = None
    if batch.mask_flag is not None:
        mask_flag = torch.cat([batch.mask_flag, batch.mask_flag.new_zeros(extra_atoms)])
    return positions, species_index, edge_index, shifts, graph, mask_flag


class CompiledEnergyForces:
    """``(batch) -> (energy (G,) eV, forces (N, 3) eV/A)`` of ``potential``, differentiable with respect to its
    parameters (training); the same numbers as ``maskpot.train.metrics.predict_batch(create_graph=True)`` up to
    floating-point rounding. The parameters are read at every call (an optimiser may change them in place)."""

    # compiled graphs one function may hold: one per potential and bucket (dynamo's default, 8, would make a
    # process that trains many models, or one model on many sizes, fall back to eager without a word)
    RECOMPILE_LIMIT = 64

    def __init__(self, potential: torch.nn.Module) -> None:
        self.potential = potential
        self.shapes: set[tuple[int, int, int]] = set()
        torch._dynamo.reset()  # the graphs of earlier runs' potentials are never called again
        self._compiled = torch.compile(self._padded, dynamic=False)

    def _padded(self, params: dict, buffers: dict, positions: Tensor, species_index: Tensor, edge_index: Tensor,
                shifts: Tensor, graph: Tensor, n_graphs: int,
                mask_flag: Tensor | None) -> tuple[Tensor, Tensor]:
        potential = self.potential
        state = (params, buffers)

        def call(edge_vec: Tensor) -> tuple[Tensor, Tensor]:
            return torch.func.functional_call(potential, state, (species_index, edge_index, edge_vec, mask_flag))

        edge_vec = edge_vectors(positions, edge_index, shifts)
        if not potential.energy_centric:  # force-centric: the node vectors are the forces
            node_energy, forces = call(edge_vec)
            return graph_energy(node_energy, graph, n_graphs), forces

        def total(vec: Tensor) -> tuple[Tensor, Tensor]:
            energy = graph_energy(call(vec)[0], graph, n_graphs)
            return energy.sum(), energy

        g, (_, energy) = torch.func.grad_and_value(total, has_aux=True)(edge_vec)
        return energy, edge_forces(g, edge_index, positions.shape[0])

    def __call__(self, batch: GraphBatch) -> tuple[Tensor, Tensor]:
        positions, species_index, edge_index, shifts, graph, mask_flag = pad(batch, self.potential.cutoff)
        shape = (positions.shape[0], edge_index.shape[1], batch.n_graphs)
        if shape not in self.shapes:
            self.shapes.add(shape)
            log.info("torch.compile: energies and forces for %d atoms, %d edges, %d graphs (padded; about a minute)",
                     *shape)
        params = dict(self.potential.named_parameters())
        buffers = dict(self.potential.named_buffers())
        with torch._dynamo.config.patch(recompile_limit=self.RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True):
            energy, forces = self._compiled(params, buffers, positions, species_index, edge_index, shifts, graph,
                                            batch.n_graphs + 1, mask_flag)
        return energy[:batch.n_graphs], forces[:batch.positions.shape[0]]
