"""EGNN's edge step on the fused operator ``torch.ops.maskpot.egnn_message`` (maskpot/kernels/csrc).

``FusedEGNNLayer`` takes over the modules of a reference ``maskpot.models.egnn.EGNNLayer`` and computes the same
function (same units and shapes): the per-atom products w_i(h), w_j(h) and the update phi_h stay torch ops, the
edge MLP (phi_e, the envelope, the sum over neighbours and the coordinate update's phi_x) is the operator.
``use_fused(potential)`` swaps it into every EGNN backbone of a potential; the reference classes stay untouched,
so training and reference exports are unaffected.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from maskpot.models.backbone import leading_rows
from maskpot.models.egnn import EGNN, EGNNLayer


class FusedEGNNLayer(nn.Module):
    """``EGNNLayer`` with its edge loop in one C++ operator on the CPU: no (E, F) edge tensors (on other devices
    it runs the reference layer). Inference only: the operator's backward gives input gradients (forces) but no
    weight gradients and no double backward."""

    def __init__(self, reference: EGNNLayer) -> None:
        super().__init__()
        self.reference = reference
        # the coordinate update's MLP, None for the last layer (it moves nothing)
        self.move: Optional[nn.Module] = reference.phi_x if reference.moves else None

    def forward(self, h: Tensor, d: Tensor, radial: Tensor, fcut: Tensor, r_vec: Tensor,
                i: Tensor, j: Tensor, norm: float, n_local: int) -> tuple[Tensor, Tensor]:
        ref = self.reference
        if h.device.type != "cpu":  # the operator is CPU-only: elsewhere (OpenMM's CUDA platform) the reference
            return ref(h, d, radial, fcut, r_vec, i, j, norm, n_local)
        h_recv = leading_rows(h, n_local)
        a, b = ref.w_i(h_recv), ref.w_j(h)
        edge_linear = ref.phi_e[1]
        d = leading_rows(d, n_local)
        move = self.move
        if move is None:
            agg, _ = torch.ops.maskpot.egnn_message(a, b, radial, fcut, r_vec, i, j, ref.w_r.weight,
                                                    edge_linear.weight, edge_linear.bias, None, None, None, norm)
        else:
            first, last = move[0], move[2]
            agg, dd = torch.ops.maskpot.egnn_message(a, b, radial, fcut, r_vec, i, j, ref.w_r.weight,
                                                     edge_linear.weight, edge_linear.bias, first.weight, first.bias,
                                                     last.weight, norm)
            d = d + dd
        return h_recv + ref.phi_h(torch.cat([h_recv, agg], dim=-1)), d


def use_fused(potential: nn.Module) -> int:
    """Replace every layer of every EGNN backbone inside ``potential`` by ``FusedEGNNLayer`` (in place; loads the
    operator library). Returns how many layers were switched (0: no EGNN backbone, nothing to fuse)."""
    from maskpot import kernels

    n = 0
    for module in potential.modules():
        if isinstance(module, EGNN):
            for k, layer in enumerate(module.layers):
                if isinstance(layer, EGNNLayer):
                    module.layers[k] = FusedEGNNLayer(layer)
                    n += 1
    if n:
        kernels.load()
    return n
