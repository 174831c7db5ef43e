"""What pretraining trains, and its loss on a batch of frames.

Objectives: ``mask`` (recover removed hydrogens, cosine loss), ``denoise`` (undo Gaussian position noise, MSE),
``both`` (masking then noise on the reduced frame; the two losses are summed). Only positions are used.

Read-outs, i.e. which per-atom vector answers the task:
- ``force`` (the paper's, Zhang et al.'s code): the model is a whole ``Potential`` and the answer is its own
  force output: -dE/dx of the energy head for energy-centric backbones, the force head for force-centric ones.
  For ``mask`` the force on each flagged atom should point at the removed hydrogen; for ``denoise`` the force
  should restore the clean positions, ``F = -noise / sigma`` (dimensionless units). Finetuning then starts from
  the whole model, head included, so pretraining shapes the function finetuning trains.
- ``head``: the backbone plus one linear ``VectorHead`` per objective on its vector features; finetuning takes
  the backbone only.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from maskpot.data.frame import Frame
from maskpot.models.config import ModelConfig
from maskpot.pretrain.denoise import denoise_loss, noisy_frame
from maskpot.pretrain.masking import mask_frame, masked_cosine_loss
from maskpot.train.batch import collate
from maskpot.train.config import PretrainTask, objective_heads


class HeadModel(torch.nn.Module):
    """Read-out ``head``: ``backbone`` (exactly a Potential's) + ``heads[name]`` VectorHeads (N, 3, F) -> (N, 3)."""

    def __init__(self, config: ModelConfig, objective: str) -> None:
        super().__init__()
        from maskpot.models import build_potential
        from maskpot.models.heads import VectorHead

        self.backbone = build_potential(config).backbone
        self.heads = torch.nn.ModuleDict({name: VectorHead(config.hidden) for name in objective_heads(objective)})

    def forward(self, species_index, edge_index, edge_vec, mask_flag=None) -> dict[str, torch.Tensor]:
        _, v = self.backbone(species_index, edge_index, edge_vec, mask_flag)
        return {name: head(v) for name, head in self.heads.items()}


def pretrain_model(config: ModelConfig, task: PretrainTask) -> torch.nn.Module:
    """The module pretraining trains: a ``Potential`` (read-out force) or a ``HeadModel`` (read-out head)."""
    from maskpot.models import build_potential

    task.check()
    if task.readout == "head" and config.backbone == "egnn":
        raise ValueError("read-out head needs per-atom vector features (painn, gns); EGNN has none: pretrain it "
                         "with --readout force")
    return build_potential(config) if task.readout == "force" else HeadModel(config, task.objective)


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


def _answers(model: torch.nn.Module, batch, task: PretrainTask,
             forces_of: Callable | None = None) -> dict[str, torch.Tensor]:
    """The model's (N, 3) vector for each objective; ``forces_of(batch)`` gives the force read-out's forces when
    given (maskpot.train.compiled), else autograd here."""
    if task.readout == "head":
        return model(batch.species_index, batch.edge_index, batch.edge_vectors(), batch.mask_flag)
    if forces_of is not None:
        forces = forces_of(batch)
    else:
        from maskpot.models.compute import energy_forces

        with torch.enable_grad():  # forces are a gradient, also when evaluating
            _, forces, _ = energy_forces(model, batch.positions, batch.species_index, batch.edge_index,
                                         batch.shifts, batch.batch, batch.n_graphs, model.training, batch.mask_flag)
    return {name: forces for name in objective_heads(task.objective)}


def pretrain_loss(model: torch.nn.Module, frames: Sequence[Frame], task: PretrainTask, rng: np.random.Generator,
                  parents: ParentCache, dtype: torch.dtype, cutoff: float, species: Sequence[int],
                  forces_of: Callable | None = None) -> dict[str, torch.Tensor]:
    """Corrupt ``frames`` (mask and/or noise), run the model, return ``{"loss", "mask"?, "denoise"?}``
    (``forces_of``: see ``_answers``)."""
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
            noise_targets.append(-target if task.readout == "force" else target)
        inputs.append(frame)
    batch = collate(inputs, cutoff, species, dtype, mask_flags=flags if flags else None)
    out = _answers(model, batch, task, forces_of)
    losses: dict[str, torch.Tensor] = {}
    if "mask" in heads:
        target = torch.as_tensor(np.concatenate(mask_targets), dtype=dtype)
        losses["mask"] = masked_cosine_loss(out["mask"], target, batch.mask_flag)
    if "denoise" in heads:
        target = torch.as_tensor(np.concatenate(noise_targets), dtype=dtype)
        losses["denoise"] = denoise_loss(out["denoise"], target)
    losses["loss"] = sum(losses.values())
    return losses
