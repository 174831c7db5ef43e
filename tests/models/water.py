"""Generated water-like test structures (no external data): jittered grid of O, two H at 0.96 A, 104.5 degrees."""

import numpy as np
import torch


def water_positions(n_per_side: int, box: float, seed: int = 0, jitter: float = 0.3) -> np.ndarray:
    """(3 M, 3) positions in Angstrom, ordered O H H per molecule, M = n_per_side**3, in a cubic box of side ``box``."""
    rng = np.random.default_rng(seed)
    g = (np.arange(n_per_side) + 0.5) * box / n_per_side
    oxy = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    oxy = oxy + rng.uniform(-jitter, jitter, oxy.shape)
    half = np.deg2rad(104.5) / 2
    out = []
    for o in oxy:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        h1 = 0.96 * (np.cos(half) * q[0] + np.sin(half) * q[1])
        h2 = 0.96 * (np.cos(half) * q[0] - np.sin(half) * q[1])
        out += [o, o + h1, o + h2]
    return np.array(out)


def random_rotation(seed: int, dtype: torch.dtype) -> torch.Tensor:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return torch.tensor(q, dtype=dtype)
