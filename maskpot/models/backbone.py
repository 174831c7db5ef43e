"""The layer-by-layer form every backbone takes, so that an engine can run one message-passing layer at a time.

A backbone is four steps; ``forward`` composes them on the whole graph, and so does the ``Potential`` around it
(maskpot.models.potential, which adds heads and priors); engines that split the graph across processes (LAMMPS
on several MPI ranks, see lammps/src/pair_maskpot.h) call them one by one and exchange the node states of border
atoms between layers. The first ``n_local`` nodes are the atoms a process owns (all of them on a whole graph):
they receive messages and are updated; the rest (ghosts) only send.

- ``edge_features(edge_vec (E,3) A) -> feat (E, G)``: everything a layer needs from the geometry (radial basis,
  envelope, unit vectors), differentiable with respect to ``edge_vec``.
- ``initial_state(species_index (N,), feat, mask_flag) -> (node (N, D), edge (E, De))``: node states depend on
  the species only (so every process can make them for its ghost atoms); edge states (De may be 0) on ``feat``.
  ``species_index`` indexes the model's ``species`` (atomic numbers).
- ``layer_step(k, node (N, D), edge, feat, i, j, n_local) -> (node (n_local, D), edge)``: layer ``k``; messages
  flow from j to i along every edge, every i < n_local, and only nodes 0..n_local-1 are updated.
- ``node_features(node (n_local, D), edge, feat, i, n_local) -> (s (n_local, F), v (n_local, 3, F))``: the
  invariant and equivariant features the heads read.

``state_width`` is D: the number of values per atom an engine exchanges between layers.
"""

from typing import Optional

import torch
from torch import Tensor, nn

from maskpot.models.embedding import SpeciesEmbedding
from maskpot.models.radial import EdgeGeometry


def leading_rows(x: Tensor, n: int) -> Tensor:
    """``x[:n]``, and ``x`` itself when ``n`` covers every row (a whole graph: n_local = N). Autograd's backward of
    a slice fills a zero tensor of x's size and copies the gradient into it, even for a slice of every row."""
    return x if n == x.shape[0] else x[:n]


class MessagePassing(nn.Module):
    """Base of the backbones: ``forward(species_index, edge_index, edge_vec, mask_flag) -> (s (N,F), v (N,3,F))``."""

    n_layers: int
    state_width: int

    def forward(self, species_index: Tensor, edge_index: Tensor, edge_vec: Tensor,
                mask_flag: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        i, j = edge_index[0], edge_index[1]
        n_local = species_index.shape[0]
        feat = self.edge_features(edge_vec)
        node, edge = self.initial_state(species_index, feat, mask_flag)
        for k in range(self.n_layers):
            node, edge = self.layer_step(k, node, edge, feat, i, j, n_local)
        return self.node_features(node, edge, feat, i, n_local)


class Backbone(MessagePassing):
    """The set-up every backbone shares: a species embedding of width F (``hidden``), the edge geometry (radial
    basis and envelope) and a neighbour-sum normalisation 1/avg_neighbors."""

    def __init__(self, n_species: int, cutoff: float, hidden: int, layers: int, num_rbf: int,
                 avg_neighbors: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.num_rbf = num_rbf
        self.n_layers = layers
        self.norm = 1.0 / avg_neighbors
        self.embedding = SpeciesEmbedding(n_species, hidden)
        self.geometry = EdgeGeometry(cutoff, num_rbf)


class ScalarVectorBackbone(Backbone):
    """Node state [s | v] (N, 4F) of scalar features s (N, F) and vector features v (N, 3, F), no edge state:
    the packing PaiNN uses. Subclasses add ``layers``."""

    def __init__(self, n_species: int, cutoff: float, hidden: int, layers: int, num_rbf: int,
                 avg_neighbors: float) -> None:
        super().__init__(n_species, cutoff, hidden, layers, num_rbf, avg_neighbors)
        self.state_width = 4 * hidden

    def start(self, s: Tensor, feat: Tensor) -> tuple[Tensor, Tensor]:
        """Initial state from scalar features s (N, F): vectors zero, and an empty (E, 0) edge state."""
        v = s.new_zeros((s.shape[0], 3, self.hidden))
        return self.pack(s, v), feat.new_zeros((feat.shape[0], 0))

    def pack(self, s: Tensor, v: Tensor) -> Tensor:
        return torch.cat([s, v.reshape(s.shape[0], 3 * self.hidden)], dim=-1)

    def unpack(self, node: Tensor) -> tuple[Tensor, Tensor]:
        # one split, not two slices: its backward concatenates the two gradients instead of filling two zero
        # tensors of the node state's size
        s, v = torch.split(node, [self.hidden, 3 * self.hidden], dim=1)
        return s, v.reshape(node.shape[0], 3, self.hidden)

    def node_features(self, node: Tensor, edge: Tensor, feat: Tensor, i: Tensor, n_local: int) -> tuple[Tensor, Tensor]:
        return self.unpack(leading_rows(node, n_local))
