"""Pretraining: the shared training loop (maskpot.train.loop) on a self-supervised task; a checkpoint of kind
"pretrained".

The corruption of training step ``k`` is drawn from (seed, k), so a resumed run corrupts exactly as an
uninterrupted one; validation uses the same corruption at every evaluation, so its losses are comparable. The
checkpoint holds the trained module's state: with read-out ``force`` a whole ``Potential`` (what finetuning
loads, head included), with ``head`` the backbone (``backbone.*``, what finetuning loads) and the vector heads
(``heads.*``, dropped). The task, read-out included, is stored in the checkpoint's data. A CSV log and a
learning-curve PNG sit next to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from maskpot.data.frame import Frame
from maskpot.models.build import torch_dtype
from maskpot.models.config import ModelConfig, resolve_avg_neighbors
from maskpot.pretrain.objective import ParentCache, pretrain_loss, pretrain_model
from maskpot.train.batch import batches
from maskpot.train.checkpoint import save_checkpoint
from maskpot.train.config import PretrainConfig, PretrainTask
from maskpot.train.loop import fit_checkpoint

LOG_COLUMNS = ["step", "train_loss", "val_loss", "val_mask", "val_denoise", "lr", "seconds"]


@dataclass
class PretrainResult:
    model: torch.nn.Module
    best_step: int
    best_val: dict
    rows: list
    log_path: Path
    stopped: str


def pretrain(frames: Sequence[Frame], out: str | Path, model_config: ModelConfig, task: PretrainTask = PretrainTask(),
             cfg: PretrainConfig = PretrainConfig(), val_frames: Sequence[Frame] | None = None,
             resume: bool = False, on_eval: Callable[[dict], None] | None = None) -> PretrainResult:
    """Pretrain on the geometries of ``frames`` and write the best-validation checkpoint to ``out``.

    Validation frames are ``val_frames`` when given, else a ``cfg.val_fraction`` split of ``frames``. An
    ``avg_neighbors`` of None in ``model_config`` is computed from the training frames (the checkpoint stores it).
    """
    from maskpot.data import split_frames, summary

    out = Path(out)
    if val_frames is not None:
        train, val = list(frames), list(val_frames)
    else:
        if not 0.0 < cfg.val_fraction < 1.0:
            raise ValueError(f"val fraction must be in (0, 1), got {cfg.val_fraction}")
        train, val, _ = split_frames(list(frames), fractions=(1.0 - cfg.val_fraction, cfg.val_fraction, 0.0),
                                     seed=cfg.seed)
    if not train or not val:
        raise ValueError(f"pretrain: need training and validation frames, got {len(train)} and {len(val)}")
    model_config = resolve_avg_neighbors(model_config, train)
    torch.manual_seed(cfg.seed)
    dtype = torch_dtype(model_config)
    model = pretrain_model(model_config, task).to(dtype)
    parents = ParentCache()
    cutoff, species = model_config.cutoff, model_config.species

    forces_of = None
    if cfg.compile:
        if task.readout != "force":
            raise ValueError("pretrain: --compile compiles the force read-out's forces; the head read-out has none")
        from maskpot.train.compiled import CompiledEnergyForces

        compiled = CompiledEnergyForces(model)

        def forces_of(batch):
            return compiled(batch)[1]

    def step_loss(step: int, idx: np.ndarray) -> torch.Tensor:
        rng = np.random.default_rng([cfg.seed, 7, step])
        return pretrain_loss(model, [train[k] for k in idx], task, rng, parents, dtype, cutoff, species,
                             forces_of)["loss"]

    def evaluate(module: torch.nn.Module) -> dict:
        rng = np.random.default_rng([cfg.seed, 11])
        sums: dict[str, float] = {}
        with torch.no_grad():
            for idx in batches(len(val), cfg.batch_size):
                losses = pretrain_loss(module, [val[k] for k in idx], task, rng, parents, dtype, cutoff, species)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
        means = {k: v / len(val) for k, v in sums.items()}
        return {"loss": means.pop("loss"), **{f"val_{k}": v for k, v in means.items()}}

    data = {"frames": summary(list(frames)), "n_train": len(train), "n_val": len(val), "task": asdict(task),
            "options": asdict(cfg)}

    def save(state: dict, step: int, metrics: dict) -> Path:
        model.load_state_dict(state)
        save_checkpoint(out, model, model_config, kind="pretrained", data_summary=data,
                        metrics={"best_step": step, "val": metrics})
        return out

    result, log_path = fit_checkpoint(
        out, LOG_COLUMNS, f"pretrain ({task.objective}, read-out {task.readout})", model, step_loss, len(train),
        evaluate, save, cfg, "pretrain", {"task": asdict(task), "model": model_config.to_dict(), "n_train": len(train)},
        resume, on_eval)
    return PretrainResult(model.eval(), result.best_step, result.best_metrics, result.rows, log_path, result.stopped)
