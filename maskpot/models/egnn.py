"""EGNN backbone (Satorras, Hoogeboom, Welling 2021), energy-centric and periodic-safe.

Each layer's messages use the current distance |r_ij| (Bessel basis and r^2); every layer but the last also
moves the atoms, as EGNN's coordinate update does: d_i += sum_j r_ij * phi_x(m_ij) * envelope / avg_neighbors,
and the next layer sees r_ij + d_j - d_i. So the equivariant channel feeds the energy. Edges stay those of the
original neighbour list and keep the original distance's envelope, so energies stay smooth at the cutoff;
positions are never used, only edge vectors, so periodic images and translations are handled exactly. The
node state is [h | d] (N, F + 3). There are no per-atom vector features for a vector head: pretrain EGNN with
the force read-out.
"""


from typing import Optional

import torch
from torch import Tensor, nn

from maskpot.models.backbone import Backbone, leading_rows


class EGNNLayer(nn.Module):
    def __init__(self, hidden: int, num_rbf: int, moves: bool) -> None:
        super().__init__()
        # phi_e(cat(h_i, h_j, radial)) with its first linear split by input so it runs on atoms, not edges
        self.w_i = nn.Linear(hidden, hidden)
        self.w_j = nn.Linear(hidden, hidden, bias=False)
        self.w_r = nn.Linear(num_rbf + 1, hidden, bias=False)
        self.phi_e = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.phi_h = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.moves = moves
        # the last layer moves nothing: its displacement could not reach the energy
        self.phi_x = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1, bias=False)) \
            if moves else nn.Identity()

    def forward(self, h: Tensor, d: Tensor, radial: Tensor, fcut: Tensor, r_vec: Tensor,
                i: Tensor, j: Tensor, norm: float, n_local: int) -> tuple[Tensor, Tensor]:
        h_recv = leading_rows(h, n_local)
        m = self.phi_e(self.w_i(h_recv)[i] + self.w_j(h)[j] + self.w_r(radial)) * fcut.unsqueeze(-1)
        agg = torch.zeros_like(h_recv).index_add(0, i, m) * norm
        d = leading_rows(d, n_local)
        if self.moves:
            d = d.index_add(0, i, r_vec * (self.phi_x(m) * (fcut * norm).unsqueeze(-1)))
        return h_recv + self.phi_h(torch.cat([h_recv, agg], dim=-1)), d


class EGNN(Backbone):
    """EGNN as a MessagePassing backbone (see maskpot.models.backbone): node state = [h | d] (N, F + 3), no edge
    state; edge features = [edge vector | envelope] (E, 4), the radial basis is made per layer from the moved
    atoms."""

    def __init__(self, n_species: int, cutoff: float, hidden: int, layers: int, num_rbf: int,
                 avg_neighbors: float) -> None:
        super().__init__(n_species, cutoff, hidden, layers, num_rbf, avg_neighbors)
        self.cutoff = cutoff
        self.state_width = hidden + 3
        self.layers = nn.ModuleList([EGNNLayer(hidden, num_rbf, k < layers - 1) for k in range(layers)])

    def edge_features(self, edge_vec: Tensor) -> Tensor:
        r = torch.linalg.vector_norm(edge_vec, dim=-1)
        return torch.cat([edge_vec, self.geometry.envelope(r).unsqueeze(-1)], dim=-1)

    def initial_state(self, species_index: Tensor, feat: Tensor, mask_flag: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        h = self.embedding(species_index, mask_flag).to(feat.dtype)
        return torch.cat([h, h.new_zeros((h.shape[0], 3))], dim=-1), feat.new_zeros((feat.shape[0], 0))

    def layer_step(self, k: int, node: Tensor, edge: Tensor, feat: Tensor, i: Tensor, j: Tensor,
                   n_local: int) -> tuple[Tensor, Tensor]:
        h, d = torch.split(node, [self.hidden, 3], dim=1)  # one split: see ScalarVectorBackbone.unpack
        r_vec = feat[:, :3] + d[j] - d[i]
        # eps: a moved pair cannot reach r = 0 exactly, but keep the basis finite if it comes close
        r = torch.sqrt(torch.sum(r_vec * r_vec, dim=-1) + 1e-12)
        radial = torch.cat([self.geometry.rbf(r), (r * r / (self.cutoff * self.cutoff)).unsqueeze(-1)], dim=-1)
        for idx, layer in enumerate(self.layers):  # TorchScript indexes a ModuleList by constants only
            if idx == k:
                h, d = layer(h, d, radial, feat[:, 3], r_vec, i, j, self.norm, n_local)
        return torch.cat([h, d], dim=-1), edge

    def node_features(self, node: Tensor, edge: Tensor, feat: Tensor, i: Tensor, n_local: int) -> tuple[Tensor, Tensor]:
        """(h (n_local, F), an empty (n_local, 3, 0) vector part): the energy head reads h only."""
        return node[:n_local, :self.hidden], node.new_zeros((n_local, 3, 0))
