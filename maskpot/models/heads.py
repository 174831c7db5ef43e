"""Readout heads: per-atom energy from scalars, per-atom vector from vector features."""

from torch import Tensor, nn


class EnergyHead(nn.Module):
    """(N, F) invariant scalars -> (N,) raw per-atom energy (dimensionless; Potential scales and shifts to eV)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden, max(hidden // 2, 1)), nn.SiLU(), nn.Linear(max(hidden // 2, 1), 1))

    def forward(self, s: Tensor) -> Tensor:
        return self.mlp(s).squeeze(-1)


class VectorHead(nn.Module):
    """(N, 3, F) equivariant vectors -> (N, 3): a bias-free linear combination of the F channels (stays equivariant)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, 1, bias=False)

    def forward(self, v: Tensor) -> Tensor:
        return self.linear(v).squeeze(-1)
