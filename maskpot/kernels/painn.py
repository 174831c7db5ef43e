"""PaiNN's message step, update step and edge features on the fused operators ``torch.ops.maskpot.painn_message``,
``torch.ops.maskpot.painn_update`` and ``torch.ops.maskpot.edge_basis`` (maskpot/kernels/csrc).

``FusedPaiNNMessage`` and ``FusedPaiNNUpdate`` take over the parameters of a reference
``maskpot.models.painn.PaiNNMessage`` and ``PaiNNUpdate``, ``FusedEdgeGeometry`` the radial basis and envelope of a
``maskpot.models.radial.EdgeGeometry``; each computes the same function (same units and shapes).
``use_fused(potential)`` swaps them into every PaiNN backbone of a potential. The reference classes stay
untouched, so training and reference exports are unaffected.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from maskpot.models.backbone import leading_rows
from maskpot.models.painn import PaiNN, PaiNNMessage, PaiNNUpdate, message_update
from maskpot.models.radial import EdgeGeometry


class FusedPaiNNMessage(nn.Module):
    """``PaiNNMessage`` with its edge loop in one C++ operator on the CPU: no (E, 3F) edge tensors (on other
    devices it runs the reference ops). Inference only: the operator's backward gives input gradients (forces)
    but no weight gradients and no double backward."""

    def __init__(self, reference: PaiNNMessage) -> None:
        super().__init__()
        self.hidden = reference.hidden
        self.num_rbf = reference.num_rbf
        self.phi = reference.phi
        self.filter = reference.filter

    def forward(self, s: Tensor, v: Tensor, feat: Tensor, i: Tensor, j: Tensor, first: bool,
                n_local: int) -> tuple[Tensor, Tensor]:
        s_phi = self.phi(s)
        if s.device.type != "cpu":  # the operator is CPU-only: elsewhere (OpenMM's CUDA platform) the reference ops
            rbf_cut, unit = torch.split(feat, [self.num_rbf, 3], dim=1)
            return message_update(s_phi, self.filter(rbf_cut), s, v, unit, i, j, first, n_local, self.hidden)
        # the whole (E, num_rbf + 3) feat: its gradient comes back as one tensor (a split's would be concatenated)
        ds, dv = torch.ops.maskpot.painn_message(s_phi, v, self.filter.weight, feat, i, j, n_local, first)
        return leading_rows(s, n_local) + ds, leading_rows(v, n_local) + dv


class FusedPaiNNUpdate(nn.Module):
    """``PaiNNUpdate`` as one C++ operator on the CPU (its elementwise steps fused, U and V one matrix product; on
    other devices the reference module). Inference only, like ``FusedPaiNNMessage``."""

    def __init__(self, reference: PaiNNUpdate) -> None:
        super().__init__()
        self.reference = reference
        self.eps = float(reference.eps)

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if s.device.type != "cpu":
            return self.reference(s, v)
        ref = self.reference
        first, second = ref.mlp[0], ref.mlp[2]
        weight_uv = torch.cat([ref.U.weight, ref.V.weight])  # (2F, F), 2F^2 values: made per call
        return torch.ops.maskpot.painn_update(s, v, weight_uv, first.weight, first.bias, second.weight, second.bias,
                                              self.eps)


class FusedEdgeGeometry(nn.Module):
    """``EdgeGeometry`` whose ``scaled_basis`` (PaiNN's edge features) is one C++ operator on the CPU (on other
    devices the reference ops). Inference only, like ``FusedPaiNNMessage``: first derivatives with respect to the
    edge vectors, no double backward."""

    def __init__(self, reference: EdgeGeometry) -> None:
        super().__init__()
        self.reference = reference
        self.cutoff = float(reference.envelope.cutoff)
        self.num_rbf = int(reference.rbf.num_rbf)
        self.p = float(reference.envelope.p)

    def forward(self, edge_vec: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.reference(edge_vec)

    def scaled_basis(self, edge_vec: Tensor, scale: float) -> Tensor:
        if edge_vec.device.type != "cpu":
            return self.reference.scaled_basis(edge_vec, scale)
        return torch.ops.maskpot.edge_basis(edge_vec, self.cutoff, self.num_rbf, self.p, scale)


def use_fused(potential: nn.Module) -> int:
    """Replace the message and update steps of every PaiNN layer and the edge features of every PaiNN backbone
    inside ``potential`` by the fused operators (in place; loads the operator library). Returns how many layers
    were switched (0: no PaiNN backbone, nothing to fuse)."""
    from maskpot import kernels

    n = 0
    for module in potential.modules():
        if isinstance(module, PaiNN):
            if isinstance(module.geometry, EdgeGeometry):
                module.geometry = FusedEdgeGeometry(module.geometry)
            for layer in module.layers:
                if isinstance(layer.message, PaiNNMessage):
                    layer.message = FusedPaiNNMessage(layer.message)
                    n += 1
                if isinstance(layer.update, PaiNNUpdate):
                    layer.update = FusedPaiNNUpdate(layer.update)
    if n:
        kernels.load()
    return n
