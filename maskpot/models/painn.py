"""PaiNN backbone (Schuett, Unke, Gastegger 2021): scalar (N,F) and vector (N,3,F) features, energy-centric.
Aggregated messages are divided by ``avg_neighbors`` to keep feature sizes O(1) in dense liquids.
"""


from typing import Final, Optional

import torch
from torch import Tensor, nn

from maskpot.models.backbone import ScalarVectorBackbone, leading_rows


class PaiNNMessage(nn.Module):
    """Continuous-filter message from neighbours j to atom i (equivariant in v), from the edge features
    feat = [rbf * envelope / avg_neighbors | unit vector] (E, num_rbf + 3)."""

    def __init__(self, hidden: int, num_rbf: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.num_rbf = num_rbf
        self.phi = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden))
        # bias-free so that filter(rbf * fcut) = filter(rbf) * fcut: the envelope is applied on (E, num_rbf)
        self.filter = nn.Linear(num_rbf, 3 * hidden, bias=False)

    def forward(self, s: Tensor, v: Tensor, feat: Tensor, i: Tensor, j: Tensor, first: bool,
                n_local: int) -> tuple[Tensor, Tensor]:
        rbf_cut, unit = torch.split(feat, [self.num_rbf, 3], dim=1)  # one split: see ScalarVectorBackbone.unpack
        return message_update(self.phi(s), self.filter(rbf_cut), s, v, unit, i, j, first, n_local, self.hidden)


def message_update(s_phi: Tensor, filt: Tensor, s: Tensor, v: Tensor, unit: Tensor, i: Tensor, j: Tensor,
                   first: bool, n_local: int, hidden: int) -> tuple[Tensor, Tensor]:
    """s, v of the first n_local atoms plus the messages of all edges, from phi(s) (N, 3F) and the filter
    (E, 3F); maskpot.kernels.painn.FusedPaiNNMessage computes the same in one operator."""
    x = torch.index_select(s_phi, 0, j) * filt
    ds, dvv, dvs = torch.split(x, hidden, dim=-1)
    dv = unit.unsqueeze(-1) * dvs.unsqueeze(1)
    if not first:  # v is zero before the first layer
        dv = dv + torch.index_select(v, 0, j) * dvv.unsqueeze(1)
    return leading_rows(s, n_local).index_add(0, i, ds), leading_rows(v, n_local).index_add(0, i, dv)


class PaiNNUpdate(nn.Module):
    """Atom-wise mixing of scalar and vector channels (maskpot.kernels.painn.FusedPaiNNUpdate computes the same in
    one operator)."""

    # added under the square root of |V v|: keeps the norm differentiable at v = 0 (the first layer)
    eps: Final[float] = 1e-8

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.U = nn.Linear(hidden, hidden, bias=False)
        self.V = nn.Linear(hidden, hidden, bias=False)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden))

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        uv = self.U(v)
        vv = self.V(v)
        vnorm = torch.sqrt(torch.sum(vv * vv, dim=1) + self.eps)
        a = self.mlp(torch.cat([s, vnorm], dim=-1))
        a_vv, a_sv, a_ss = torch.split(a, self.hidden, dim=-1)
        v = v + a_vv.unsqueeze(1) * uv
        s = s + a_ss + a_sv * torch.sum(uv * vv, dim=1)
        return s, v


class PaiNNLayer(nn.Module):
    def __init__(self, hidden: int, num_rbf: int) -> None:
        super().__init__()
        self.message = PaiNNMessage(hidden, num_rbf)
        self.update = PaiNNUpdate(hidden)

    def forward(self, s: Tensor, v: Tensor, feat: Tensor, i: Tensor, j: Tensor, first: bool,
                n_local: int) -> tuple[Tensor, Tensor]:
        s, v = self.message(s, v, feat, i, j, first, n_local)
        return self.update(s, v)


class PaiNN(ScalarVectorBackbone):
    """PaiNN as a MessagePassing backbone (see maskpot.models.backbone): node state = [s | v] (N, 4F), no edge
    state; edge features = [rbf * envelope / avg_neighbors | unit vector] (E, num_rbf + 3)."""

    def __init__(self, n_species: int, cutoff: float, hidden: int, layers: int, num_rbf: int,
                 avg_neighbors: float) -> None:
        super().__init__(n_species, cutoff, hidden, layers, num_rbf, avg_neighbors)
        self.layers = nn.ModuleList([PaiNNLayer(hidden, num_rbf) for _ in range(layers)])

    def forward(self, species_index: Tensor, edge_index: Tensor, edge_vec: Tensor,
                mask_flag: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """``MessagePassing.forward`` (the same steps, the same numbers) with s and v kept apart between layers: a
        whole graph exchanges no node states, so packing them into (N, 4F) would only copy them, twice per layer
        with the backward."""
        i, j = edge_index[0], edge_index[1]
        n_local = species_index.shape[0]
        feat = self.edge_features(edge_vec)
        s = self.embedding(species_index, mask_flag).to(feat.dtype)
        v = s.new_zeros((n_local, 3, self.hidden))
        for k, layer in enumerate(self.layers):
            s, v = layer(s, v, feat, i, j, k == 0, n_local)
        return s, v

    def edge_features(self, edge_vec: Tensor) -> Tensor:
        return self.geometry.scaled_basis(edge_vec, self.norm)

    def initial_state(self, species_index: Tensor, feat: Tensor, mask_flag: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        return self.start(self.embedding(species_index, mask_flag).to(feat.dtype), feat)

    def layer_step(self, k: int, node: Tensor, edge: Tensor, feat: Tensor, i: Tensor, j: Tensor,
                   n_local: int) -> tuple[Tensor, Tensor]:
        s, v = self.unpack(node)
        for idx, layer in enumerate(self.layers):  # TorchScript indexes a ModuleList by constants only
            if idx == k:
                s, v = layer(s, v, feat, i, j, k == 0, n_local)
        return self.pack(s, v), edge
