"""The training loop both stages share (pretraining and finetuning).

- Budget: at most ``max_steps`` optimiser steps (AdamW) on shuffled mini-batches of ``batch_size`` items.
- Every ``eval_every`` steps the validation loss is computed on the averaged weights (an exponential moving
  average with ``ema_decay``, as MACE and NequIP evaluate; ``ema_decay=0`` uses the raw weights). When it has
  not improved for more than ``lr_patience`` evaluations the learning rate is multiplied by ``lr_factor``
  (torch's ReduceLROnPlateau); after ``patience`` evaluations without improvement the run stops: it reached a
  plateau. The best evaluated weights are the result (``save`` writes them).
- Resume: after every evaluation the whole state (weights, EMA, optimiser, scheduler, step, best so far, log
  rows) is written atomically to ``state_path``; ``resume=True`` continues from it and ends with the same weights
  as an uninterrupted run (batches and any corruption depend only on the seed and the step). The state file is
  removed when a run ends normally.
- Ctrl-C (KeyboardInterrupt): ``save`` writes the best weights so far, then ``maskpot.errors.Interrupted`` says
  what was kept.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from maskpot.allocator import tune_allocator
from maskpot.atomic import atomic_write
from maskpot.errors import Interrupted
from maskpot.train.config import TrainConfig
from maskpot.train.runlog import RunLog

log = logging.getLogger(__name__)

# options that may differ between a saved state and the run that resumes it (the budget can be extended; compile
# changes how the step is computed, not what)
RESUMABLE_CHANGES = ("max_steps", "patience", "max_minutes", "compile")


@dataclass
class FitResult:
    best_step: int
    best_metrics: dict
    rows: list
    steps: int
    stopped: str  # "plateau" | "max_steps" | "max_minutes"


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The items of optimiser step ``step`` (0-based): epoch ``step // ceil(n / batch_size)`` is a permutation
    of ``range(n)`` drawn from (seed, epoch), cut into consecutive batches (the last one may be short)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, k = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[k * batch_size:(k + 1) * batch_size]


def check_finite(loss: torch.Tensor, stage: str, step: int) -> None:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ValueError(f"{stage}: loss is {value} at step {step}; lower the learning rate or check the data for "
                         f"NaN labels (no checkpoint written)")


def _ema(model: torch.nn.Module, decay: float):
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def _same_options(saved: dict, now: dict) -> list[str]:
    return [f"{k}: {saved.get(k)} vs {v}" for k, v in now.items()
            if k not in RESUMABLE_CHANGES and saved.get(k) != v]


def fit(model: torch.nn.Module, step_loss: Callable[[int, np.ndarray], torch.Tensor], n_train: int,
        evaluate: Callable[[torch.nn.Module], dict], save: Callable[[dict, int, dict], Path], cfg: TrainConfig,
        log_file: RunLog, state_path: Path, stage: str, options: dict | None = None, resume: bool = False,
        on_eval: Callable[[dict], None] | None = None) -> FitResult:
    """Train ``model`` (see module docstring).

    Args:
        step_loss: ``(step, indices) -> loss`` for the training items ``indices`` at optimiser step ``step``.
        n_train: number of training items.
        evaluate: ``module -> {"loss": float, ...}`` on the validation set; the other keys are logged.
        save: ``(state_dict, step, metrics) -> path`` writes the result (once at the end, or on Ctrl-C).
        log_file: per-evaluation rows (columns step, train_loss, val_loss, lr, seconds and ``evaluate``'s keys).
        state_path: where the resumable state lives.
        stage: name in messages ("pretrain", "finetune").
        options: everything that defines the run (a resumed run must match it); ``cfg`` is always included.
        on_eval: called with each log row (progress display).
    """
    cfg.check()
    tune_allocator()
    options = {**asdict(cfg), **(options or {})}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.lr_factor, patience=cfg.lr_patience)
    ema = _ema(model, cfg.ema_decay)
    step, best, seconds_before = 0, {"loss": math.inf, "step": -1, "state": None, "metrics": None}, 0.0
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"{state_path}: no training state to resume (it is written at every evaluation "
                                    f"and removed when a run ends)")
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        diff = _same_options(state["options"], options)
        if diff:
            raise ValueError(f"{state_path}: cannot resume with other options ({'; '.join(diff[:3])})")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step, best, seconds_before = state["step"], state["best"], state["seconds"]
        log_file.rows = list(state["rows"])
        log.info("%s: resumed at step %d (best %.5g at step %d)", stage, step, best["loss"], best["step"])
    start = time.perf_counter() - seconds_before

    def evaluated() -> torch.nn.Module:
        return ema.module if ema is not None else model

    def record(train_loss: float | None) -> dict:
        module = evaluated()
        module.eval()
        metrics = evaluate(module)
        model.train()  # the EMA copy is only ever evaluated
        if not math.isfinite(metrics["loss"]):
            raise ValueError(f"{stage}: validation loss is {metrics['loss']} at step {step} (no checkpoint written)")
        row = {"step": step, "train_loss": train_loss, "val_loss": metrics["loss"], "lr": opt.param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - start, 2),
               **{k: v for k, v in metrics.items() if k != "loss"}}
        log_file.add(**row)
        if metrics["loss"] < best["loss"]:
            best.update(loss=metrics["loss"], step=step, state=copy.deepcopy(module.state_dict()), metrics=metrics)
        log.info("%s step %d: val loss %.5g (best %.5g at step %d), lr %.3g", stage, step, metrics["loss"],
                 best["loss"], best["step"], row["lr"])
        if on_eval:
            on_eval(row)
        return row

    def write_state() -> None:
        state = {"options": options, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                 "step": step, "best": best, "seconds": time.perf_counter() - start, "rows": log_file.rows}
        atomic_write(state_path, lambda tmp: torch.save(state, tmp))

    def evals_since_best() -> int:
        return (step - best["step"]) // cfg.eval_every

    stopped = "max_steps"
    try:
        model.train()
        if step == 0:
            record(None)
        losses: list[float] = []
        while step < cfg.max_steps:
            loss = step_loss(step, batch_indices(n_train, cfg.batch_size, cfg.seed, step))
            check_finite(loss, stage, step + 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(float(loss.detach()))
            step += 1
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                row = record(float(np.mean(losses)))
                losses = []
                sched.step(row["val_loss"])
                write_state()
                if evals_since_best() >= cfg.patience:
                    stopped = "plateau"
                    break
                if cfg.max_minutes is not None and row["seconds"] > 60.0 * cfg.max_minutes:
                    stopped = "max_minutes"
                    break
    except KeyboardInterrupt:
        if best["state"] is None:
            raise Interrupted(f"{stage} interrupted at step {step}, before the first evaluation: nothing written")
        where = save(best["state"], best["step"], best["metrics"])
        raise Interrupted(f"{stage} interrupted at step {step}: kept the best weights so far in {where} (step "
                          f"{best['step']}, val loss {best['loss']:.5g}); resume with --resume") from None
    save(best["state"], best["step"], best["metrics"])
    if state_path.is_file():
        os.remove(state_path)
    log.info("%s: stopped (%s) at step %d; best step %d", stage, stopped, step, best["step"])
    return FitResult(best["step"], best["metrics"], log_file.rows, step, stopped)


def fit_checkpoint(out: Path, columns: list[str], title: str, model: torch.nn.Module,
                   step_loss: Callable[[int, np.ndarray], torch.Tensor], n_train: int,
                   evaluate: Callable[[torch.nn.Module], dict], save: Callable[[dict, int, dict], Path],
                   cfg: TrainConfig, stage: str, options: dict, resume: bool = False,
                   on_eval: Callable[[dict], None] | None = None) -> tuple[FitResult, Path]:
    """:func:`fit` for a run whose result is the checkpoint ``out`` (what both training stages do): its files sit
    beside it (the log ``<out>.log.csv`` with ``columns``, the state ``<out>.state.pt``, the learning curve
    ``<out>.curve.png`` titled ``title``), and a second run writing ``out`` stops at once. Returns the result and
    the log's path."""
    from maskpot.atomic import exclusive_output
    from maskpot.train.plots import learning_curve
    from maskpot.train.runlog import sibling

    log_file = RunLog(sibling(out, ".log.csv"), columns)
    with exclusive_output(out):
        result = fit(model, step_loss, n_train, evaluate, save, cfg, log_file, sibling(out, ".state.pt"), stage,
                     options=options, resume=resume, on_eval=on_eval)
    learning_curve(result.rows, sibling(out, ".curve.png"), ["train_loss", "val_loss"], title=title)
    return result, log_file.path
