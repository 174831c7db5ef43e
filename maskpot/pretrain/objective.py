"""The pretraining model (backbone + one VectorHead per objective) and its loss on a batch of frames.

Objectives: ``mask`` (recover removed hydrogens, cosine loss), ``denoise`` (regress Gaussian position noise,
MSE), ``both`` (masking then noise on the reduced frame; the two losses are summed). Only positions are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from maskpot.data.frame import Frame
from maskpot.models.config import ModelConfig
from maskpot.pretrain.denoise import denoise_loss, noisy_frame
from maskpot.pretrain.masking import mask_frame, masked_cosine_loss
from maskpot.train.batch import collate

OBJECTIVES = {"mask": ("mask",), "denoise": ("denoise",), "both": ("mask", "denoise")}


def objective_heads(objective: str) -> tuple[str, ...]:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown pretraining objective {objective!r} (choose mask, denoise or both)")
    return OBJECTIVES[objective]


class PretrainModel(torch.nn.Module):
    """``backbone`` (exactly a Potential's backbone) + ``heads[name]`` VectorHeads mapping (N, 3, F) -> (N, 3)."""

    def __init__(self, config: ModelConfig, objective: str) -> None:
        super().__init__()
        from maskpot.models import build_potential
        from maskpot.models.heads import VectorHead

        self.config = config
        self.backbone = build_potential(config).backbone
        self.heads = torch.nn.ModuleDict({name: VectorHead(config.hidden) for name in objective_heads(objective)})

    def forward(self, species, edge_index, edge_vec, mask_flag=None) -> dict[str, torch.Tensor]:
        _, v = self.backbone(species, edge_index, edge_vec, mask_flag)
        return {name: head(v) for name, head in self.heads.items()}


@dataclass
class PretrainTask:
    """Options of the self-supervised task: objective, masking ratio and noise sigma (Angstrom)."""

    objective: str = "mask"
    mask_ratio: float = 0.5
    noise: float = 0.05


class ParentCache:
    """``hydrogen_parents`` per frame (frames do not change during pretraining)."""

    def __init__(self) -> None:
        self._store: dict[int, tuple[Frame, np.ndarray]] = {}

    def get(self, frame: Frame) -> np.ndarray:
        from maskpot.data.molecules import hydrogen_parents

        hit = self._store.get(id(frame))
        if hit is None or hit[0] is not frame:
            hit = (frame, hydrogen_parents(frame))
            self._store[id(frame)] = hit
        return hit[1]


def pretrain_loss(model: PretrainModel, frames: Sequence[Frame], task: PretrainTask, rng: np.random.Generator,
                  parents: ParentCache, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Corrupt ``frames`` (mask and/or noise), run the model, return ``{"loss", "mask"?, "denoise"?}``."""
    heads = objective_heads(task.objective)
    inputs, flags, mask_targets, noise_targets = [], [], [], []
    for frame in frames:
        if "mask" in heads:
            masked = mask_frame(frame, task.mask_ratio, rng, parents.get(frame))
            frame = masked.frame
            flags.append(masked.mask_flag)
            mask_targets.append(masked.target)
        if "denoise" in heads:
            frame, target = noisy_frame(frame, task.noise, rng)
            noise_targets.append(target)
        inputs.append(frame)
    cfg = model.config
    batch = collate(inputs, cfg.cutoff, cfg.species, dtype, mask_flags=flags if flags else None)
    out = model(batch.species, batch.edge_index, batch.edge_vectors(), batch.mask_flag)
    losses: dict[str, torch.Tensor] = {}
    if "mask" in heads:
        target = torch.as_tensor(np.concatenate(mask_targets), dtype=dtype)
        losses["mask"] = masked_cosine_loss(out["mask"], target, batch.mask_flag)
    if "denoise" in heads:
        target = torch.as_tensor(np.concatenate(noise_targets), dtype=dtype)
        losses["denoise"] = denoise_loss(out["denoise"], target)
    losses["loss"] = sum(losses.values())
    return losses
