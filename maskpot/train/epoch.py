"""One optimisation pass over a training set in shuffled mini-batches, shared by pretraining and finetuning."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from maskpot.train.batch import batches
from maskpot.train.runlog import check_finite


def train_epoch(batch_loss: Callable[[np.ndarray], torch.Tensor], n: int, batch_size: int,
                rng: np.random.Generator, opt: torch.optim.Optimizer, sched, epoch: int, stage: str) -> float:
    """Shuffle ``n`` items into batches with ``rng``; for each, ``loss = batch_loss(indices)`` (stops with a
    one-line error naming ``stage``, epoch and batch if it is not finite), backward, one optimiser and one
    scheduler step. Returns the mean batch loss."""
    losses = []
    for b_i, idx in enumerate(batches(n, batch_size, rng), start=1):
        loss = batch_loss(idx)
        check_finite(loss, epoch, b_i, stage)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))
