"""EGNN-style energy-centric backbone (after Satorras, Hoogeboom, Welling 2021), periodic-safe.
Messages use |r_ij| only (Bessel basis and |r_ij|^2); instead of updating coordinates each layer accumulates
an equivariant vector channel v_i += sum_j r_ij * phi_v(m_ij) (N,3,F) that feeds a VectorHead. Positions are
never used, only edge vectors, so periodic images and translations are handled exactly.
"""


from typing import Optional

import torch
from torch import Tensor, nn

from maskpot.models.backbone import ScalarVectorBackbone


class EGNNLayer(nn.Module):
    def __init__(self, hidden: int, num_rbf: int) -> None:
        super().__init__()
        # phi_e(cat(h_i, h_j, radial)) with its first linear split by input so it runs on atoms, not edges
        self.w_i = nn.Linear(hidden, hidden)
        self.w_j = nn.Linear(hidden, hidden, bias=False)
        self.w_r = nn.Linear(num_rbf + 1, hidden, bias=False)
        self.phi_e = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.phi_h = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.phi_v = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, v: Tensor, radial: Tensor, fcut: Tensor, edge_vec: Tensor,
                i: Tensor, j: Tensor, norm: float, n_recv: int) -> tuple[Tensor, Tensor]:
        h_recv = h[:n_recv]
        m = self.phi_e(self.w_i(h_recv)[i] + self.w_j(h)[j] + self.w_r(radial)) * fcut.unsqueeze(-1)
        agg = torch.zeros_like(h_recv).index_add(0, i, m) * norm
        dv = edge_vec.unsqueeze(-1) * (self.phi_v(m) * (fcut * norm).unsqueeze(-1)).unsqueeze(1)
        v = v[:n_recv].index_add(0, i, dv)
        h = h_recv + self.phi_h(torch.cat([h_recv, agg], dim=-1))
        return h, v


class EGNN(ScalarVectorBackbone):
    """EGNN as a MessagePassing backbone (see maskpot.models.backbone): node state = [h | v] (N, 4F), no edge
    state; edge features = [radial basis, r^2/rc^2 | envelope | edge vector] (E, num_rbf + 5)."""

    def __init__(self, n_species: int, cutoff: float = 5.0, hidden: int = 64, layers: int = 3,
                 num_rbf: int = 16, avg_neighbors: float = 32.0) -> None:
        super().__init__(n_species, cutoff, hidden, layers, num_rbf, avg_neighbors)
        self.cutoff = cutoff
        self.layers = nn.ModuleList([EGNNLayer(hidden, num_rbf) for _ in range(layers)])

    def edge_features(self, edge_vec: Tensor) -> Tensor:
        r, _, rbf, fcut = self.geometry(edge_vec)
        radial2 = (r * r / (self.cutoff * self.cutoff)).unsqueeze(-1)
        return torch.cat([rbf, radial2, fcut.unsqueeze(-1), edge_vec], dim=-1)

    def initial_state(self, species: Tensor, feat: Tensor, mask_flag: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        return self.start(self.embedding(species, mask_flag).to(feat.dtype), feat)

    def layer_step(self, k: int, node: Tensor, edge: Tensor, feat: Tensor, i: Tensor, j: Tensor,
                   n_recv: int) -> tuple[Tensor, Tensor]:
        h, v = self.unpack(node)
        nr = self.num_rbf
        radial, fcut, edge_vec = feat[:, :nr + 1], feat[:, nr + 1], feat[:, nr + 2:]
        for idx, layer in enumerate(self.layers):  # TorchScript indexes a ModuleList by constants only
            if idx == k:
                h, v = layer(h, v, radial, fcut, edge_vec, i, j, self.norm, n_recv)
        return self.pack(h, v), edge
