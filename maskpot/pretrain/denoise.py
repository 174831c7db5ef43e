"""Denoising pretraining (the paper's baseline): Gaussian noise on every position, regress the noise.

The network's per-atom vector output is compared with ``noise / sigma`` (unit-variance target) by MSE.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from maskpot.data.frame import Frame


def noisy_frame(frame: Frame, sigma: float, rng: np.random.Generator) -> tuple[Frame, np.ndarray]:
    """Add N(0, sigma^2) noise (Angstrom) to all positions.

    Returns the noisy frame (labels dropped) and the target ``noise / sigma`` (N, 3).
    """
    if not sigma > 0:
        raise ValueError(f"noise sigma must be > 0 Angstrom, got {sigma}")
    noise = rng.normal(0.0, sigma, size=frame.positions.shape)
    return replace(frame, positions=frame.positions + noise, energy=None, forces=None), noise / sigma


def denoise_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted (N, 3) vectors and the scaled noise target (N, 3)."""
    return torch.mean((pred - target) ** 2)
