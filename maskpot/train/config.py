"""Typed options of the training stages: the one source of their defaults (the CLI reads them from here).

Plain dataclasses without torch, so that ``maskpot --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

EVAL_BATCH_SIZE = 8  # frames per batch when a potential is only evaluated (no gradients of the weights)
OBJECTIVES = {"mask": ("mask",), "denoise": ("denoise",), "both": ("mask", "denoise")}
READOUTS = ("force", "head")


@dataclass
class TrainConfig:
    """Options of the optimisation, shared by ``PretrainConfig`` and ``FinetuneConfig``.

    Attributes:
        max_steps: optimiser steps at most (the run usually stops earlier, on a plateau).
        batch_size: frames per optimiser step.
        lr: initial AdamW learning rate.
        weight_decay: AdamW weight decay.
        eval_every: optimiser steps between validation evaluations.
        patience: stop after this many evaluations without a better validation loss.
        lr_patience: lower the learning rate after more than this many evaluations without improvement.
        lr_factor: factor the learning rate is multiplied by on a plateau.
        ema_decay: decay of the exponential moving average of the weights that is evaluated and kept (0: off).
        seed: data split, shuffling, corruption and initialisation seed.
        val_fraction: fraction of the frames held out for validation (when no validation frames are given).
        max_minutes: stop after the evaluation that crosses this wall-clock budget; None = no limit.
        compile: run the training step's energies and forces through torch.compile
            (maskpot.train.compiled; in pretraining, the force read-out's): the same function, faster per step
            after a compile of about a minute per batch shape (benchmarks/results/train_speed.md); long runs.
    """

    max_steps: int = 4000
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 50
    patience: int = 12
    lr_patience: int = 3
    lr_factor: float = 0.5
    ema_decay: float = 0.99
    seed: int = 0
    val_fraction: float = 0.1
    max_minutes: Optional[float] = None
    compile: bool = False

    def check(self) -> None:
        """One-line ValueError for options no run can use."""
        for name in ("max_steps", "batch_size", "eval_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema-decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 < self.lr_factor <= 1.0:
            raise ValueError(f"lr-factor must be in (0, 1], got {self.lr_factor}")
        if self.lr < 0:
            raise ValueError(f"lr must be >= 0, got {self.lr}")


@dataclass
class PretrainTask:
    """The self-supervised task (maskpot.pretrain.objective): objective (mask, denoise or both), read-out (force:
    the model's own forces answer, the whole model transfers; head: a vector head answers, the backbone
    transfers), fraction of H-bearing molecules masked per frame, and the denoising noise sigma (Angstrom)."""

    objective: str = "mask"
    readout: str = "force"
    mask_ratio: float = 0.5
    noise: float = 0.05

    def check(self) -> None:
        objective_heads(self.objective)
        if self.readout not in READOUTS:
            raise ValueError(f"unknown read-out {self.readout!r} (choose {' or '.join(READOUTS)})")
        if not 0.0 < self.mask_ratio <= 1.0:
            raise ValueError(f"mask ratio must be in (0, 1], got {self.mask_ratio}")
        if self.noise <= 0:
            raise ValueError(f"noise sigma must be > 0 A, got {self.noise}")


def objective_heads(objective: str) -> tuple[str, ...]:
    """The losses an objective sums: ("mask",), ("denoise",) or both."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown pretraining objective {objective!r} (choose mask, denoise or both)")
    return OBJECTIVES[objective]


@dataclass
class PretrainConfig(TrainConfig):
    """Options of a pretraining run (the task itself is ``PretrainTask``); see ``TrainConfig``."""

    lr: float = 1e-3


@dataclass
class FinetuneConfig(TrainConfig):
    """Options of a finetuning run; the optimisation options are ``TrainConfig``'s.

    Attributes:
        energy_weight, force_weight: w_E, w_F of the loss (see ``maskpot.train.loss``). Force-heavy, as MACE
            and NequIP train (benchmarks/README.md has the probe that chose it).
        train_frames: use only this many training frames (data-efficiency runs); None = all the rest.
        repulsion: give an energy-centric model ZBL repulsion below the closest distance of each element pair in
            the training and validation frames (maskpot.models.repulsion): zero on those frames, so training is
            unchanged, and a wall where the data ends so that MD cannot fall into the network's false minima.
    """

    lr: float = 2e-3
    weight_decay: float = 1e-5
    energy_weight: float = 1.0
    force_weight: float = 10.0
    train_frames: Optional[int] = None
    repulsion: bool = True
