"""Radial features of an edge length r (Angstrom): Bessel basis and a smooth cutoff envelope."""

import math

import torch
from torch import Tensor, nn


class BesselBasis(nn.Module):
    """``sqrt(2/rc) * sin(n pi r / rc) / r`` for n = 1..num_rbf (DimeNet), r in Angstrom; shape (E,) -> (E, num_rbf)."""

    def __init__(self, cutoff: float, num_rbf: int) -> None:
        super().__init__()
        self.prefactor = math.sqrt(2.0 / cutoff)
        self.num_rbf = num_rbf
        self.step = math.pi / cutoff

    def forward(self, r: Tensor) -> Tensor:
        # the frequencies n pi / rc in r's dtype at every call (num_rbf values): a buffer made in one dtype and
        # cast to another would carry the first one's rounding (a float32 buffer in a float64 model: 1e-7)
        freqs = torch.arange(1, self.num_rbf + 1, dtype=r.dtype, device=r.device) * self.step
        # the (E,) factor first: one (E, num_rbf) product instead of a division and a product
        return torch.sin(freqs * r.unsqueeze(-1)) * (self.prefactor / r).unsqueeze(-1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Drops the frequency buffer of checkpoints written when it was one (it is computed now)."""
        state_dict.pop(prefix + "freqs", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class PolynomialCutoff(nn.Module):
    """Envelope 1 at r=0 falling to 0 at r=cutoff with zero first and second derivatives there (NequIP, p=6).

    Multiplying every edge's contribution by it makes energies, forces and their derivatives continuous
    when a neighbour crosses the cutoff. Shape (E,) -> (E,); zero for r >= cutoff.
    """

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.p = float(p)

    def forward(self, r: Tensor) -> Tensor:
        p = self.p
        x = r / self.cutoff
        # 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), with one power (Horner)
        a, b, c = -0.5 * (p + 1.0) * (p + 2.0), p * (p + 2.0), -0.5 * p * (p + 1.0)
        env = 1.0 + torch.pow(x, p) * (a + x * (b + c * x))
        return env * (x < 1.0).to(r.dtype)


class EdgeGeometry(nn.Module):
    """Shared edge preprocessing: lengths, unit vectors, radial basis and envelope of ``edge_vec`` (E, 3) Angstrom."""

    def __init__(self, cutoff: float, num_rbf: int) -> None:
        super().__init__()
        self.rbf = BesselBasis(cutoff, num_rbf)
        self.envelope = PolynomialCutoff(cutoff)

    def forward(self, edge_vec: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Returns (r (E,), unit (E,3), rbf (E,num_rbf), fcut (E,))."""
        r = torch.linalg.vector_norm(edge_vec, dim=-1)
        unit = edge_vec / r.unsqueeze(-1)
        return r, unit, self.rbf(r), self.envelope(r)

    def scaled_basis(self, edge_vec: Tensor, scale: float) -> Tensor:
        """(E, num_rbf + 3): [rbf * envelope * scale | unit], PaiNN's edge features (maskpot.kernels.painn
        computes the same in one operator)."""
        _, unit, rbf, fcut = self.forward(edge_vec)
        return torch.cat([rbf * (fcut * scale).unsqueeze(-1), unit], dim=-1)
