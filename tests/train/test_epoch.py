"""maskpot.train.epoch.train_epoch: one step per batch, the mean batch loss, and a one-line error on NaN."""

import numpy as np
import pytest
import torch

from maskpot.train.epoch import train_epoch


def setup(lr: float = 0.1):
    w = torch.nn.Parameter(torch.tensor([2.0]))
    opt = torch.optim.SGD([w], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return w, opt, sched


def test_steps_once_per_batch_and_returns_the_mean_loss():
    w, opt, sched = setup()
    seen, losses = [], []

    def batch_loss(idx):
        seen.extend(idx.tolist())
        loss = (w ** 2).sum() * len(idx)
        losses.append(float(loss.detach()))
        return loss

    mean = train_epoch(batch_loss, 10, 4, np.random.default_rng(0), opt, sched, epoch=1, stage="test")
    assert sorted(seen) == list(range(10)) and len(losses) == 3  # batches of 4, 4, 2 cover every item once
    assert mean == pytest.approx(np.mean(losses))
    assert sched.last_epoch == 3 and float(w.detach()) < 2.0  # three optimiser/scheduler steps moved w downhill


def test_non_finite_loss_names_stage_epoch_and_batch():
    w, opt, sched = setup()
    calls = iter([(w ** 2).sum(), w.sum() * float("nan")])
    with pytest.raises(ValueError, match=r"^finetune: loss is nan at epoch 3 batch 2;"):
        train_epoch(lambda idx: next(calls), 4, 2, np.random.default_rng(0), opt, sched, epoch=3, stage="finetune")
