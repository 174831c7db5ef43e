"""GNS's edge encoder, edge update and decoder on the fused operators ``torch.ops.maskpot.gns_encode``,
``gns_edge`` and ``gns_decode`` (maskpot/kernels/csrc/gns_edge.cpp).

``FusedGNSLayer`` takes over the modules of a reference ``maskpot.models.gns.GNSLayer`` and computes the same
function (same units and shapes): the per-atom products e_i(h), e_j(h) and the node MLP stay torch ops, the edge
MLP with its layer norm, the residual and the sum over neighbours are the operator. ``FusedEdgeEncoder`` and
``FusedEdgeDecoder`` do the same for GNS's edge encoder and ``EdgeDecoder.vectors``. ``use_fused(potential)``
swaps them into every GNS backbone of a potential; the reference classes stay untouched, so training and
reference exports are unaffected. Forward only: GNS is force-centric (its forces are outputs of the forward), so
nothing differentiates it at inference.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from maskpot.models.backbone import leading_rows
from maskpot.models.gns import GNS, EdgeDecoder, GNSLayer


class FusedGNSLayer(nn.Module):
    """``GNSLayer`` with its edge part in one C++ operator on the CPU: no (E, F) intermediates (on other devices
    it runs the reference layer). Inference only: the outputs carry no gradient."""

    def __init__(self, reference: GNSLayer) -> None:
        super().__init__()
        self.reference = reference
        self.eps = float(reference.edge_rest[2].eps)

    def forward(self, h: Tensor, e: Tensor, fcut: Tensor, i: Tensor, j: Tensor, norm: float,
                n_local: int) -> tuple[Tensor, Tensor]:
        ref = self.reference
        if h.device.type != "cpu":  # the operator is CPU-only: elsewhere (OpenMM's CUDA platform) the reference
            return ref(h, e, fcut, i, j, norm, n_local)
        h_recv = leading_rows(h, n_local)
        linear, norm_layer = ref.edge_rest[1], ref.edge_rest[2]
        e, agg = torch.ops.maskpot.gns_edge(e, ref.e_i(h_recv), ref.e_j(h), fcut, i, j, ref.e_e.weight, ref.e_e.bias,
                                            linear.weight, linear.bias, norm_layer.weight, norm_layer.bias,
                                            self.eps, norm)
        return h_recv + ref.node(torch.cat([h_recv, agg], dim=-1)), e


class FusedEdgeEncoder(nn.Module):
    """GNS's edge encoder (Linear, SiLU, Linear, LayerNorm on the radial basis) as one C++ operator on the CPU (on
    other devices the reference). Inference only, like ``FusedGNSLayer``."""

    def __init__(self, reference: nn.Sequential) -> None:
        super().__init__()
        self.reference = reference
        self.eps = float(reference[3].eps)

    def forward(self, rbf: Tensor) -> Tensor:
        ref = self.reference
        if rbf.device.type != "cpu":
            return ref(rbf)
        first, second, norm = ref[0], ref[2], ref[3]
        return torch.ops.maskpot.gns_encode(rbf, first.weight, first.bias, second.weight, second.bias, norm.weight,
                                            norm.bias, self.eps)


class FusedEdgeDecoder(nn.Module):
    """``EdgeDecoder`` whose ``vectors`` (the decoder MLP and the sum over neighbours) is one C++ operator on the
    CPU (on other devices the reference). Inference only, like ``FusedGNSLayer``."""

    def __init__(self, reference: EdgeDecoder) -> None:
        super().__init__()
        self.reference = reference

    def forward(self, edge: Tensor) -> Tensor:
        return self.reference(edge)

    def vectors(self, edge: Tensor, unit: Tensor, fcut: Tensor, i: Tensor, norm: float, n_local: int) -> Tensor:
        ref = self.reference
        if edge.device.type != "cpu":
            return ref.vectors(edge, unit, fcut, i, norm, n_local)
        first, last = ref[0], ref[2]
        return torch.ops.maskpot.gns_decode(edge, unit, fcut, i, first.weight, first.bias, last.weight, last.bias,
                                            n_local, norm)


def use_fused(potential: nn.Module) -> int:
    """Replace the edge encoder, every layer and the decoder of every GNS backbone inside ``potential`` by their
    fused versions (in place; loads the operator library). Returns how many layers were switched (0: no GNS
    backbone, nothing to fuse)."""
    from maskpot import kernels

    n = 0
    for module in potential.modules():
        if isinstance(module, GNS):
            for k, layer in enumerate(module.layers):
                if isinstance(layer, GNSLayer):
                    module.layers[k] = FusedGNSLayer(layer)
                    n += 1
            if isinstance(module.decoder, EdgeDecoder):
                module.decoder = FusedEdgeDecoder(module.decoder)
            if isinstance(module.edge_encoder, nn.Sequential):
                module.edge_encoder = FusedEdgeEncoder(module.edge_encoder)
    if n:
        kernels.load()
    return n
