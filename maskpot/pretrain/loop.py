"""Pretraining loop: Adam, cosine learning-rate schedule, best-validation checkpoint (kind="pretrained").

Validation uses the same corruption every epoch (a generator reseeded from ``seed``) so its loss is comparable
across epochs; the log's epoch 0 row is the untrained model. The checkpoint holds the ``PretrainModel`` state: ``backbone.*`` (what finetuning loads) and
``heads.*`` (dropped by finetuning). A CSV log and learning-curve PNG sit next to it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from maskpot.data.frame import Frame
from maskpot.models.config import ModelConfig
from maskpot.pretrain.objective import ParentCache, PretrainModel, PretrainTask, pretrain_loss
from maskpot.train.batch import batches
from maskpot.train.checkpoint import save_checkpoint
from maskpot.models.build import torch_dtype
from maskpot.train.plots import learning_curve
from maskpot.train.epoch import train_epoch
from maskpot.train.runlog import RunLog, progress, sibling

LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_mask", "val_denoise", "lr", "seconds"]


@dataclass
class PretrainConfig:
    """Options of a pretraining run (the task itself is ``PretrainTask``)."""

    epochs: int = 10
    batch_size: int = 4
    lr: float = 1e-3
    seed: int = 0
    val_fraction: float = 0.1
    max_minutes: Optional[float] = None


@dataclass
class PretrainResult:
    model: PretrainModel
    best_epoch: int
    best_val: dict
    rows: list
    log_path: Path


def _evaluate(model, frames, task, cfg, parents, dtype) -> dict:
    rng = np.random.default_rng(cfg.seed + 1_000_003)
    sums: dict[str, float] = {}
    with torch.no_grad():
        for idx in batches(len(frames), cfg.batch_size):
            losses = pretrain_loss(model, [frames[k] for k in idx], task, rng, parents, dtype)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
    return {k: v / len(frames) for k, v in sums.items()}


def pretrain(frames: Sequence[Frame], out: str | Path, model_config: ModelConfig, task: PretrainTask = PretrainTask(),
             cfg: PretrainConfig = PretrainConfig(), show_progress: bool = True) -> PretrainResult:
    """Pretrain a backbone on the geometries of ``frames`` and write the best-validation checkpoint to ``out``."""
    from maskpot.data import split_frames, summary

    out = Path(out)
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ValueError(f"val fraction must be in (0, 1), got {cfg.val_fraction}")
    train, val, _ = split_frames(list(frames), fractions=(1.0 - cfg.val_fraction, cfg.val_fraction, 0.0),
                                 seed=cfg.seed)
    if not train or not val:
        raise ValueError(f"pretrain: need training and validation frames, got {len(train)} and {len(val)}")
    torch.manual_seed(cfg.seed)
    dtype = torch_dtype(model_config)
    model = PretrainModel(model_config, task.objective).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    total = max(1, cfg.epochs * math.ceil(len(train) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    parents = ParentCache()
    rng = np.random.default_rng(cfg.seed)
    log = RunLog(sibling(out, ".log.csv"), LOG_COLUMNS)
    best = (math.inf, -1, None, None)
    start = time.perf_counter()

    with progress(show_progress) as bar:
        task_id = bar.add_task(f"pretrain ({task.objective})", total=cfg.epochs, info="") if bar else None
        untrained = _evaluate(model, val, task, cfg, parents, dtype)
        log.add(epoch=0, val_loss=untrained["loss"], val_mask=untrained.get("mask"),
                val_denoise=untrained.get("denoise"), lr=opt.param_groups[0]["lr"], seconds=0.0)
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            train_loss = train_epoch(
                lambda idx: pretrain_loss(model, [train[k] for k in idx], task, rng, parents, dtype)["loss"],
                len(train), cfg.batch_size, rng, opt, sched, epoch, "pretrain")
            model.eval()
            val_losses = _evaluate(model, val, task, cfg, parents, dtype)
            if not math.isfinite(val_losses["loss"]):
                raise ValueError(f"pretrain: validation loss is {val_losses['loss']} at epoch {epoch} "
                                 f"(no checkpoint written)")
            seconds = time.perf_counter() - start
            log.add(epoch=epoch, train_loss=train_loss, val_loss=val_losses["loss"],
                    val_mask=val_losses.get("mask"), val_denoise=val_losses.get("denoise"),
                    lr=opt.param_groups[0]["lr"], seconds=round(seconds, 2))
            if val_losses["loss"] < best[0]:
                best = (val_losses["loss"], epoch, copy.deepcopy(model.state_dict()), val_losses)
            if bar:
                bar.update(task_id, advance=1, info=f"val loss {val_losses['loss']:.4f}")
            if cfg.max_minutes is not None and seconds > 60.0 * cfg.max_minutes:
                break

    model.load_state_dict(best[2])
    learning_curve(log.rows, sibling(out, ".curve.png"), ["train_loss", "val_loss"], title=f"pretrain ({task.objective})")
    data = {"frames": summary(list(frames)), "n_train": len(train), "n_val": len(val),
            "task": asdict(task), "options": asdict(cfg)}
    save_checkpoint(out, model, model_config, kind="pretrained", data_summary=data,
                    metrics={"best_epoch": best[1], "val": best[3]})
    return PretrainResult(model, best[1], best[3], log.rows, log.path)

