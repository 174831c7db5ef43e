"""Short-range repulsion where the training data ends: ZBL, switched on below the closest distance seen in training.

A physical prior of the Potential (maskpot.models.potential: the model is network + priors), applied by every
engine through the model's own calls. A message-passing potential knows nothing about distances its training
frames never reach. Finetuned PaiNN water models have false minima just inside the data's closest O-O distance
(benchmarks/contact_scan.py), and MD falls into them (molecules overlap, LAMMPS loses atoms). This term adds, for
each pair of atoms i, j closer than ``r_off(Z_i, Z_j)`` (the closest distance of that element pair in the
training frames minus a 0.1 A margin), the ZBL universal screened nuclear repulsion (Ziegler, Biersack, Littmark
1985) times a switch that is 1 below ``r_off - width`` (0.3 A), 0 at and above ``r_off`` and C2-smooth between.
It is exactly zero on every training frame, so training is unchanged, and puts a physical wall where the data
ends. MACE, NequIP and TorchMD-Net each have a torch ZBL term, written against their own model and data classes
and switched off at the covalent radii or at a fixed cutoff; here the switch sits at the data's edge, because
the false minima lie near 2 A O-O, far outside any covalent radius, and the term is a few lines that would
otherwise bring one of those model packages into the pins. Tests compare it with LAMMPS' pair_style zbl.

Energies in eV, distances in Angstrom. Element pairs the data never brought within the model's cutoff get none.
"""

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from ase.units import Bohr, Hartree
from torch import Tensor, nn

COULOMB = Hartree * Bohr  # e^2 / (4 pi eps0) = 14.3996 eV A
ZBL_COEFFS = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)
ZBL_LENGTH = 0.46850  # A: a = 0.46850 / (Z_i^0.23 + Z_j^0.23)
MARGIN = 0.1  # A: the repulsion ends this far below the closest distance of the training data


def pair_key(z1: int, z2: int) -> str:
    """The config key of an element pair: "1-8" (atomic numbers, smaller first)."""
    a, b = sorted((int(z1), int(z2)))
    return f"{a}-{b}"


def closest_pair_distances(frames, species: Sequence[int], cutoff: float) -> Dict[str, float]:
    """The closest distance (A, minimum image) of each element pair over ``frames``, for pairs closer than
    ``cutoff`` in at least one frame: {"1-8": 0.93, "8-8": 2.35, ...}."""
    from maskpot.data.neighbors import neighbor_list

    best: Dict[str, float] = {}
    for f in frames:
        i, j, shifts = neighbor_list(f.positions, f.cell, f.pbc, cutoff)
        if len(i) == 0:
            continue
        vec = f.positions[j] - f.positions[i] + (shifts @ f.cell if f.cell is not None else 0.0)
        r = np.linalg.norm(vec, axis=1)
        zi, zj = np.minimum(f.numbers[i], f.numbers[j]), np.maximum(f.numbers[i], f.numbers[j])
        for a, b in set(zip(zi.tolist(), zj.tolist())):
            if a in species and b in species:
                key = pair_key(a, b)
                d = float(r[(zi == a) & (zj == b)].min())
                best[key] = min(best.get(key, np.inf), d)
    return dict(sorted(best.items()))


def repulsion_table(frames, species: Sequence[int], cutoff: float, margin: float = MARGIN) -> Dict[str, float]:
    """The config's ``repulsion``: for each element pair, the closest distance in ``frames`` minus ``margin`` (A),
    below which the repulsion switches on. The margin keeps it off on frames a little closer than the training
    ones (test frames, MD at the data's edge)."""
    return {key: round(d - margin, 4) for key, d in closest_pair_distances(frames, species, cutoff).items()}


class ZBLRepulsion(nn.Module):
    """``forward(species_index (N,), edge_index (2,E), edge_vec (E,3) A, n_local) -> (n_local,) eV``: half the
    switched ZBL energy of every edge i <- j (i < n_local) added to atom i (edges come in both directions, so the
    halves make each pair's energy; on a LAMMPS rank, a local atom's edges to ghosts give it its half).

    ``r_off`` maps pair keys ("8-8") to the distance (A) below which the repulsion switches on (``repulsion_table``);
    pairs without an entry get none. The tables are non-persistent buffers built from the model config, so
    checkpoints' state_dicts do not change.
    """

    width: float
    coulomb: float
    coeffs: List[float]
    exponents: List[float]

    def __init__(self, species: Sequence[int], r_off: Optional[Dict[str, float]], width: float) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"repulsion width must be positive, got {width} A")
        table = dict(r_off or {})
        known = {pair_key(a, b) for a in species for b in species}
        for key, value in table.items():
            if key not in known:
                raise ValueError(f"repulsion pair {key} is not a pair of the model's species {list(species)}")
            if not value > width:
                raise ValueError(f"repulsion distance of pair {key} is {value} A; it must exceed the width {width} A")
        z = torch.tensor([float(s) for s in species])
        off = torch.tensor([[float(table.get(pair_key(za, zb), 0.0)) for zb in species] for za in species])
        self.width = float(width)
        self.coulomb = float(COULOMB)  # TorchScript reads attributes, not module-level constants
        self.coeffs = list(ZBL_COEFFS)
        self.exponents = list(ZBL_EXPONENTS)
        self.register_buffer("r_off", off, persistent=False)
        self.register_buffer("screening", ZBL_LENGTH / (z.pow(0.23)[:, None] + z.pow(0.23)[None, :]),
                             persistent=False)
        self.register_buffer("zz", z[:, None] * z[None, :], persistent=False)

    def pair_energy(self, si: Tensor, sj: Tensor, r: Tensor) -> Tensor:
        """Switched ZBL energy (eV) of pairs of species indices si, sj at distances r (A); zero where r >= r_off."""
        r_off = self.r_off[si, sj]
        x = r / self.screening[si, sj]
        phi = torch.zeros_like(r)
        for c, k in zip(self.coeffs, self.exponents):
            phi = phi + c * torch.exp(-k * x)
        t = ((r - (r_off - self.width)) / self.width).clamp(0.0, 1.0)
        switch = 1.0 - t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)
        on = (r < r_off).to(r.dtype)
        return on * switch * self.coulomb * self.zz[si, sj] / r * phi

    def forward(self, species_index: Tensor, edge_index: Tensor, edge_vec: Tensor, n_local: int) -> Tensor:
        out = torch.zeros((n_local,), dtype=edge_vec.dtype, device=edge_vec.device)
        i, j = edge_index[0], edge_index[1]
        r = torch.linalg.vector_norm(edge_vec, dim=-1)
        return out.index_add(0, i, 0.5 * self.pair_energy(species_index[i], species_index[j], r))


def describe(r_off: Optional[Dict[str, float]], width: float) -> List[str]:
    """One line per pair, for logs: "O-O: ZBL below 2.250 A (full below 1.950 A)"."""
    from ase.data import chemical_symbols

    lines = []
    for key, value in (r_off or {}).items():
        a, b = (chemical_symbols[int(z)] for z in key.split("-"))
        lines.append(f"{a}-{b}: ZBL below {value:.3f} A (full below {value - width:.3f} A)")
    return lines
