"""EGNN-style energy-centric backbone (after Satorras, Hoogeboom, Welling 2021), periodic-safe.
Messages use |r_ij| only (Bessel basis and |r_ij|^2); instead of updating coordinates each layer accumulates
an equivariant vector channel v_i += sum_j r_ij * phi_v(m_ij) (N,3,F) that feeds a VectorHead. Positions are
never used, only edge vectors, so periodic images and translations are handled exactly.
"""


from typing import Optional

import torch
from torch import Tensor, nn

from maskpot.models.embedding import SpeciesEmbedding
from maskpot.models.radial import EdgeGeometry


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
                i: Tensor, j: Tensor, norm: float) -> tuple[Tensor, Tensor]:
        m = self.phi_e(self.w_i(h)[i] + self.w_j(h)[j] + self.w_r(radial)) * fcut.unsqueeze(-1)
        agg = torch.zeros_like(h).index_add(0, i, m) * norm
        dv = edge_vec.unsqueeze(-1) * (self.phi_v(m) * (fcut * norm).unsqueeze(-1)).unsqueeze(1)
        v = v.index_add(0, i, dv)
        h = h + self.phi_h(torch.cat([h, agg], dim=-1))
        return h, v


class EGNN(nn.Module):
    """``(species, edge_index, edge_vec, mask_flag) -> (s (N,F), v (N,3,F))``."""

    def __init__(self, n_species: int, cutoff: float = 5.0, hidden: int = 64, layers: int = 3,
                 num_rbf: int = 16, avg_neighbors: float = 32.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.cutoff = cutoff
        self.norm = 1.0 / avg_neighbors
        self.embedding = SpeciesEmbedding(n_species, hidden)
        self.geometry = EdgeGeometry(cutoff, num_rbf)
        self.layers = nn.ModuleList([EGNNLayer(hidden, num_rbf) for _ in range(layers)])

    def forward(self, species: Tensor, edge_index: Tensor, edge_vec: Tensor,
                mask_flag: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        i, j = edge_index[0], edge_index[1]
        r, _, rbf, fcut = self.geometry(edge_vec)
        radial = torch.cat([rbf, (r * r / (self.cutoff * self.cutoff)).unsqueeze(-1)], dim=-1)
        h = self.embedding(species, mask_flag).to(edge_vec.dtype)
        v = torch.zeros((h.shape[0], 3, self.hidden), dtype=h.dtype, device=h.device)
        for layer in self.layers:
            h, v = layer(h, v, radial, fcut, edge_vec, i, j, self.norm)
        return h, v
