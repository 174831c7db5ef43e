"""GNS-style force-centric backbone (encode-process-decode, after Sanchez-Gonzalez et al. 2020).
Nodes are encoded from species, edges from |r_ij| (Bessel basis); processing layers update edge and node
latents with residual MLPs; the decoder makes equivariant vectors v_i = sum_j unit(r_ij) * w(e_ij) (N,3,F).
Only edge vectors enter, so outputs are translation invariant and rotation equivariant by construction.
Every edge's contribution is multiplied by the cutoff envelope, so outputs are continuous at the cutoff.
"""


from typing import Optional

import torch
from torch import Tensor, nn

from maskpot.models.backbone import Backbone, leading_rows


def _mlp(n_in: int, hidden: int, n_out: int, layer_norm: bool = True) -> nn.Sequential:
    mods = [nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, n_out)]
    if layer_norm:
        mods.append(nn.LayerNorm(n_out))
    return nn.Sequential(*mods)


class EdgeDecoder(nn.Sequential):
    """The decoder MLP of the edge states (Linear, SiLU, Linear: an nn.Sequential, so checkpoints keep their keys)
    and the vectors it makes, v_i = sum_j unit(r_ij) * decoder(e_ij) * fcut_ij * norm (n_local, 3, F);
    maskpot.kernels.gns.FusedEdgeDecoder computes the same ``vectors`` in one operator."""

    def __init__(self, hidden: int) -> None:
        super().__init__(*_mlp(hidden, hidden, hidden, layer_norm=False))

    def vectors(self, edge: Tensor, unit: Tensor, fcut: Tensor, i: Tensor, norm: float, n_local: int) -> Tensor:
        w = self(edge) * (fcut * norm).unsqueeze(-1)
        v = torch.zeros((n_local, 3, w.shape[1]), dtype=w.dtype, device=w.device)
        return v.index_add(0, i, unit.unsqueeze(-1) * w.unsqueeze(1))


class GNSLayer(nn.Module):
    """One processing layer: edge states from themselves and both end atoms (residual, layer norm), node states
    from themselves and the envelope-weighted sum of their edges' states (maskpot.kernels.gns.FusedGNSLayer
    computes the same with the edge part in one operator)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        # edge MLP on cat(e, h_i, h_j), first linear split by input so h parts run on atoms
        self.e_e = nn.Linear(hidden, hidden)
        self.e_i = nn.Linear(hidden, hidden, bias=False)
        self.e_j = nn.Linear(hidden, hidden, bias=False)
        self.edge_rest = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.LayerNorm(hidden))
        self.node = _mlp(2 * hidden, hidden, hidden)

    def forward(self, h: Tensor, e: Tensor, fcut: Tensor, i: Tensor, j: Tensor, norm: float,
                n_local: int) -> tuple[Tensor, Tensor]:
        h_recv = leading_rows(h, n_local)
        e = e + self.edge_rest(self.e_e(e) + self.e_i(h_recv)[i] + self.e_j(h)[j])
        agg = torch.zeros_like(h_recv).index_add(0, i, e * (fcut * norm).unsqueeze(-1))
        h = h_recv + self.node(torch.cat([h_recv, agg], dim=-1))
        return h, e


class GNS(Backbone):
    """GNS as a MessagePassing backbone (see maskpot.models.backbone): node state = h (N, F), edge state = e
    (E, F); edge features = [unit vector | radial basis | envelope] (E, num_rbf + 4). Forces come from a
    VectorHead on v."""

    def __init__(self, n_species: int, cutoff: float, hidden: int, layers: int, num_rbf: int,
                 avg_neighbors: float) -> None:
        super().__init__(n_species, cutoff, hidden, layers, num_rbf, avg_neighbors)
        self.state_width = hidden
        self.node_encoder = _mlp(hidden, hidden, hidden)
        self.edge_encoder = _mlp(num_rbf, hidden, hidden)
        self.layers = nn.ModuleList([GNSLayer(hidden) for _ in range(layers)])
        self.decoder = EdgeDecoder(hidden)

    def edge_features(self, edge_vec: Tensor) -> Tensor:
        _, unit, rbf, fcut = self.geometry(edge_vec)
        return torch.cat([unit, rbf, fcut.unsqueeze(-1)], dim=-1)

    def initial_state(self, species_index: Tensor, feat: Tensor, mask_flag: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        h = self.node_encoder(self.embedding(species_index, mask_flag).to(feat.dtype))
        return h, self.edge_encoder(feat[:, 3:3 + self.num_rbf])

    def layer_step(self, k: int, node: Tensor, edge: Tensor, feat: Tensor, i: Tensor, j: Tensor,
                   n_local: int) -> tuple[Tensor, Tensor]:
        fcut = feat[:, 3 + self.num_rbf]
        for idx, layer in enumerate(self.layers):  # TorchScript indexes a ModuleList by constants only
            if idx == k:
                node, edge = layer(node, edge, fcut, i, j, self.norm, n_local)
        return node, edge

    def node_features(self, node: Tensor, edge: Tensor, feat: Tensor, i: Tensor, n_local: int) -> tuple[Tensor, Tensor]:
        unit, fcut = feat[:, :3], feat[:, 3 + self.num_rbf]
        return leading_rows(node, n_local), self.decoder.vectors(edge, unit, fcut, i, self.norm, n_local)
