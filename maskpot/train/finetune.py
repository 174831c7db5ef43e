"""Finetuning on energies and forces, from scratch or from a pretrained backbone.

AdamW, cosine learning-rate schedule (per step), early stopping on the validation loss (the training loss's
weighted L1 on the validation split), the best-validation weights kept and written once at the end: a run that
fails (NaN loss, bad data) leaves no checkpoint behind. A CSV log and a learning-curve PNG sit next to the
checkpoint (``model.log.csv``, ``model.curve.png``); the log's epoch 0 row is the model before training.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from maskpot.data.frame import Frame
from maskpot.models.config import ModelConfig
from maskpot.models.repulsion import repulsion_table
from maskpot.train.batch import NeighborCache, collate
from maskpot.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from maskpot.train.loss import LossWeights, energy_force_loss
from maskpot.models.build import torch_dtype
from maskpot.train.metrics import error_metrics, predict, predict_batch
from maskpot.train.normalization import Normalization, fit_normalization
from maskpot.train.plots import learning_curve
from maskpot.train.epoch import train_epoch
from maskpot.train.runlog import RunLog, progress, sibling

LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_energy_mae", "val_force_mae", "lr", "seconds"]


@dataclass
class FinetuneConfig:
    """Options of a finetuning run.

    Attributes:
        epochs: passes over the training frames (the cosine schedule spans all of them).
        batch_size: frames per optimiser step.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        energy_weight, force_weight: w_E, w_F of the loss (see ``maskpot.train.loss``).
        patience: stop after this many epochs without a better validation loss.
        seed: split, shuffling and initialisation seed.
        val_fraction: fraction of the frames held out for validation.
        train_frames: use only this many training frames (data-efficiency runs); None = all the rest.
        max_minutes: stop after the epoch that crosses this wall-clock budget; None = no limit.
        repulsion: give an energy-centric model ZBL repulsion below the closest distance of each element pair in
            the training and validation frames (maskpot.models.repulsion): zero on those frames, so training is
            unchanged, and a wall where the data ends so that MD cannot fall into the network's false minima.
    """

    epochs: int = 8
    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-5
    # force-heavy, as MACE and NequIP train: with w_E = 10, w_F = 1 EGNN never left the zero-force plateau in
    # 20 epochs (608 meV/A on DeePMD water, 25 frames) and PaiNN reached 264 meV/A; w_E = 1, w_F = 10 gave 228
    # and 153 (one seed each, benchmarks/README.md)
    energy_weight: float = 1.0
    force_weight: float = 10.0
    patience: int = 10
    seed: int = 0
    val_fraction: float = 0.1
    train_frames: Optional[int] = None
    max_minutes: Optional[float] = None
    repulsion: bool = True


@dataclass
class FinetuneResult:
    potential: torch.nn.Module
    config: ModelConfig
    normalization: Normalization
    best_epoch: int
    val_metrics: dict
    test_metrics: Optional[dict] = None
    init_report: Optional[dict] = None
    log_path: Optional[Path] = None
    rows: list = field(default_factory=list)


def load_pretrained_backbone(potential: torch.nn.Module, ckpt: Checkpoint) -> dict:
    """Copy EVERY backbone tensor of ``ckpt`` into ``potential.backbone``.

    Returns ``{"loaded": n, "missing": [], "unexpected": []}``; any missing or unexpected key or shape mismatch
    is a ValueError (the pretrained backbone must be exactly the finetuned model's backbone).
    """
    state = ckpt.backbone_state()
    target = potential.backbone.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    if not state or missing or unexpected:
        raise ValueError(f"{ckpt.path}: backbone weights do not match the model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}, {len(state)} tensors in checkpoint)")
    bad = [k for k in state if tuple(state[k].shape) != tuple(target[k].shape)]
    if bad:
        raise ValueError(f"{ckpt.path}: backbone tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                         f"model expects {tuple(target[bad[0]].shape)}")
    potential.backbone.load_state_dict(state, strict=True)
    return {"loaded": len(state), "missing": missing, "unexpected": unexpected}


def resolve_init(init: str | None, model_config: ModelConfig | None) -> tuple[ModelConfig, Checkpoint | None]:
    """The model config to finetune: from the pretrained checkpoint when given (it must agree with
    ``model_config`` if both are given), else ``model_config``."""
    if init is None:
        if model_config is None:
            raise ValueError("finetune: give a model config or a pretrained checkpoint (--init)")
        return model_config, None
    ckpt = load_checkpoint(init)
    if model_config is not None and model_config.to_dict() != ckpt.config.to_dict():
        a, b = ckpt.config.to_dict(), model_config.to_dict()
        diff = [f"{k}: {a[k]} vs {b[k]}" for k in a if a[k] != b.get(k)]
        raise ValueError(f"{ckpt.path}: pretrained model differs from the requested one ({'; '.join(diff)})")
    return ckpt.config, ckpt


def _val_loss(metrics: dict, scale: float, cfg: FinetuneConfig) -> float:
    """The loss on validation predictions, from MAEs in meV (same weighting as training)."""
    loss = cfg.force_weight * metrics["force_mae"] / 1000.0 / scale
    if metrics["energy_mae"] is not None:
        loss += cfg.energy_weight * metrics["energy_mae"] / 1000.0 / scale
    return loss


def finetune(frames: Sequence[Frame], out: str | Path, cfg: FinetuneConfig = FinetuneConfig(),
             model_config: ModelConfig | None = None, init: str | None = None,
             test_frames: Sequence[Frame] | None = None, show_progress: bool = True) -> FinetuneResult:
    """Finetune a potential on labelled ``frames`` and write the best-validation checkpoint to ``out``.

    ``frames`` are split into validation (``cfg.val_fraction``) and training (at most ``cfg.train_frames``).
    With ``init`` (a pretrained checkpoint) every backbone weight is loaded from it before training.
    ``test_frames``, when given, are evaluated with the best weights and stored in the checkpoint's metrics.
    """
    from maskpot.data import split_frames, summary
    from maskpot.models import build_potential

    out = Path(out)
    config, ckpt = resolve_init(init, model_config)
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ValueError(f"val fraction must be in (0, 1), got {cfg.val_fraction}")
    train, val, _ = split_frames(list(frames), n_train=cfg.train_frames,
                                 fractions=(1.0 - cfg.val_fraction, cfg.val_fraction, 0.0), seed=cfg.seed)
    if not train or not val:
        raise ValueError(f"finetune: need training and validation frames, got {len(train)} and {len(val)}")
    for f in list(train) + list(val):
        if f.energy is None or f.forces is None:
            raise ValueError(f"{f.source or 'frame'}: finetuning needs energy and forces on every frame")

    table = repulsion_table(list(train) + list(val), config.species, config.cutoff) \
        if cfg.repulsion and config.energy_centric else None
    config = replace(config, repulsion=table)

    torch.manual_seed(cfg.seed)
    dtype = torch_dtype(config)
    potential = build_potential(config).to(dtype)
    norm = fit_normalization(train, config.species)
    norm.apply_to(potential)
    init_report = load_pretrained_backbone(potential, ckpt) if ckpt is not None else None

    weights = LossWeights(cfg.energy_weight if config.energy_centric else 0.0, cfg.force_weight)
    opt = torch.optim.AdamW(potential.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = max(1, cfg.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    train_cache, val_cache = NeighborCache(), NeighborCache()
    rng = np.random.default_rng(cfg.seed)
    log = RunLog(sibling(out, ".log.csv"), LOG_COLUMNS)

    def batch_loss(idx: np.ndarray) -> torch.Tensor:
        batch = collate([train[k] for k in idx], config.cutoff, config.species, dtype, train_cache)
        energy, forces = predict_batch(potential, batch, create_graph=True)
        return energy_force_loss(energy, forces, batch.energy, batch.forces, batch.n_atoms, norm.scale, weights)

    best = (math.inf, -1, None, None)  # val loss, epoch, state, metrics
    start = time.perf_counter()

    with progress(show_progress) as bar:
        task = bar.add_task("finetune", total=cfg.epochs, info="") if bar else None
        untrained = error_metrics(predict(potential, val, cfg.batch_size, val_cache), config.energy_centric)
        log.add(epoch=0, val_loss=_val_loss(untrained, norm.scale, cfg), val_energy_mae=untrained["energy_mae"],
                val_force_mae=untrained["force_mae"], lr=opt.param_groups[0]["lr"], seconds=0.0)
        for epoch in range(1, cfg.epochs + 1):
            potential.train()
            train_loss = train_epoch(batch_loss, len(train), cfg.batch_size, rng, opt, sched, epoch, "finetune")
            potential.eval()
            metrics = error_metrics(predict(potential, val, cfg.batch_size, val_cache), config.energy_centric)
            val_loss = _val_loss(metrics, norm.scale, cfg)
            if not math.isfinite(val_loss):
                raise ValueError(f"finetune: validation loss is {val_loss} at epoch {epoch} (no checkpoint written)")
            seconds = time.perf_counter() - start
            log.add(epoch=epoch, train_loss=train_loss, val_loss=val_loss,
                    val_energy_mae=metrics["energy_mae"], val_force_mae=metrics["force_mae"],
                    lr=opt.param_groups[0]["lr"], seconds=round(seconds, 2))
            if val_loss < best[0]:
                best = (val_loss, epoch, copy.deepcopy(potential.state_dict()), metrics)
            if bar:
                e = metrics["energy_mae"]
                bar.update(task, advance=1, info=f"val E {e if e is None else round(e, 2)} meV/atom, "
                                                 f"F {metrics['force_mae']:.1f} meV/Å")
            if epoch - best[1] >= cfg.patience:
                break
            if cfg.max_minutes is not None and seconds > 60.0 * cfg.max_minutes:
                break

    potential.load_state_dict(best[2])
    potential.eval()
    test_metrics = None
    if test_frames:
        test_metrics = error_metrics(predict(potential, list(test_frames), cfg.batch_size), config.energy_centric)
    learning_curve(log.rows, sibling(out, ".curve.png"), ["train_loss", "val_loss"], title="finetune")
    data = {"train": summary(train), "n_train": len(train), "n_val": len(val), "init": init,
            "options": asdict(cfg)}
    ckpt_metrics = {"best_epoch": best[1], "val": best[3], "test": test_metrics, "init": init_report}
    save_checkpoint(out, potential, config, kind="finetuned", normalization=norm.to_dict(), data_summary=data,
                    metrics=ckpt_metrics)
    return FinetuneResult(potential, config, norm, best[1], best[3], test_metrics, init_report, log.path, log.rows)

