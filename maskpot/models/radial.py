"""Radial features of an edge length r (Angstrom): Bessel basis and a smooth cutoff envelope."""

import math

import torch
from torch import Tensor, nn


class BesselBasis(nn.Module):
    """``sqrt(2/rc) * sin(n pi r / rc) / r`` for n = 1..num_rbf (DimeNet), r in Angstrom; shape (E,) -> (E, num_rbf)."""

    def __init__(self, cutoff: float, num_rbf: int) -> None:
        super().__init__()
        self.prefactor = math.sqrt(2.0 / cutoff)
        self.register_buffer("freqs", torch.arange(1, num_rbf + 1, dtype=torch.get_default_dtype()) * math.pi / cutoff)

    def forward(self, r: Tensor) -> Tensor:
        # the (E,) factor first: one (E, num_rbf) product instead of a division and a product
        return torch.sin(self.freqs * r.unsqueeze(-1)) * (self.prefactor / r).unsqueeze(-1)


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
