"""Finetuning on energies and forces, from scratch or from a pretrained or finetuned checkpoint.

The shared training loop (maskpot.train.loop: AdamW, learning rate lowered on a validation plateau, early
stopping, EMA weights, resumable) on the loss of maskpot.train.loss; the validation loss is the same weighted L1
on the validation frames. The best-validation weights are written once at the end (or on Ctrl-C): a run that
fails (NaN loss, bad data) leaves no checkpoint behind. A CSV log and a learning-curve PNG sit next to the
checkpoint (``model.log.csv``, ``model.curve.png``); the log's step 0 row is the model before training.

Starting points (``init``):
- a pretrained checkpoint with read-out ``force``, or a finetuned checkpoint (supervised pretraining, e.g. on
  classical forces): the whole model, head included;
- a pretrained checkpoint with read-out ``head`` (or one written before read-outs existed): the backbone only.
The per-species energy shift and the scale are always fitted on the finetuning frames, and the short-range
repulsion comes from them: neither is taken from ``init``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from maskpot.data.frame import Frame
from maskpot.models.build import torch_dtype
from maskpot.models.config import ModelConfig, resolve_avg_neighbors
from maskpot.models.repulsion import repulsion_table
from maskpot.train.batch import NeighborCache, collate
from maskpot.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from maskpot.train.config import FinetuneConfig
from maskpot.train.loop import fit_checkpoint
from maskpot.train.loss import LossWeights, energy_force_loss
from maskpot.train.metrics import error_metrics, predict, predict_batch
from maskpot.train.normalization import Normalization, fit_normalization

LOG_COLUMNS = ["step", "train_loss", "val_loss", "val_energy_mae", "val_force_mae", "lr", "seconds"]
# Potential tensors that belong to the finetuning data, never to the starting point
DATA_TENSORS = ("energy_shift", "output_scale", "z_to_species_index")


def network_tensor(key: str) -> bool:
    """Whether a whole-model tensor transfers: not the data's normalisation (refitted) nor a prior's."""
    return key not in DATA_TENSORS and not key.startswith("priors.")


@dataclass
class FinetuneResult:
    potential: torch.nn.Module
    config: ModelConfig
    normalization: Normalization
    best_step: int
    val_metrics: dict
    stopped: str
    test_metrics: Optional[dict] = None
    init_report: Optional[dict] = None
    log_path: Optional[Path] = None
    rows: list = field(default_factory=list)


def transferred_part(ckpt: Checkpoint) -> str:
    """What finetuning takes from ``ckpt``: ``"model"`` (every tensor but the data's) or ``"backbone"``."""
    if ckpt.kind == "finetuned":
        return "model"
    return "model" if (ckpt.data.get("task") or {}).get("readout") == "force" else "backbone"


def load_init(potential: torch.nn.Module, ckpt: Checkpoint) -> dict:
    """Copy the starting point's tensors (``transferred_part``) into ``potential``.

    Returns ``{"part": "model" | "backbone", "loaded": n, "missing": [], "unexpected": []}``; any missing or
    unexpected key or shape mismatch is a ValueError (the starting point must be exactly this architecture).
    """
    part = transferred_part(ckpt)
    if part == "backbone":
        state, target_module = ckpt.backbone_state(), potential.backbone
    else:
        state = {k: v for k, v in ckpt.state_dict.items() if network_tensor(k)}
        target_module = potential
    target = target_module.state_dict()
    bad = [k for k in state if k in target and tuple(state[k].shape) != tuple(target[k].shape)]
    if bad:
        raise ValueError(f"{ckpt.path}: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                         f"model expects {tuple(target[bad[0]].shape)}")
    # the modules' own load hooks decide what is missing or unexpected: they take the tensors of older
    # checkpoints (renamed or retired buffers) as they were meant
    keys = target_module.load_state_dict(state, strict=False)
    missing = sorted(k for k in keys.missing_keys if part == "backbone" or network_tensor(k))
    unexpected = sorted(keys.unexpected_keys)
    if not state or missing or unexpected:
        raise ValueError(f"{ckpt.path}: {part} weights do not match the model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}, {len(state)} tensors in checkpoint)")
    return {"part": part, "loaded": len(state), "missing": missing, "unexpected": unexpected}


def resolve_init(init: str | None, model_config: ModelConfig | None) -> tuple[ModelConfig, Checkpoint | None]:
    """The model config to finetune: from the starting checkpoint when given (it must agree with
    ``model_config`` if both are given; the repulsion table is not compared, nor an ``avg_neighbors`` of None:
    the checkpoint's number is kept, its weights were trained with it), else ``model_config``."""
    if init is None:
        if model_config is None:
            raise ValueError("finetune: give a model config or a checkpoint to start from (--init)")
        return model_config, None
    ckpt = load_checkpoint(init)
    config = replace(ckpt.config, repulsion=None)
    if model_config is not None:
        unset = {"avg_neighbors": config.avg_neighbors} if model_config.avg_neighbors is None else {}
        a, b = config.to_dict(), replace(model_config, repulsion=None, **unset).to_dict()
        diff = [f"{k}: {a[k]} vs {b[k]}" for k in a if a[k] != b.get(k)]
        if diff:
            raise ValueError(f"{ckpt.path}: starting model differs from the requested one ({'; '.join(diff)})")
    return config, ckpt


def validation_loss(metrics: dict, scale: float, cfg: FinetuneConfig) -> float:
    """The loss on validation predictions, from MAEs in meV (same weighting as training)."""
    loss = cfg.force_weight * metrics["force_mae"] / 1000.0 / scale
    if metrics["energy_mae"] is not None:
        loss += cfg.energy_weight * metrics["energy_mae"] / 1000.0 / scale
    return loss


def finetune(frames: Sequence[Frame], out: str | Path, cfg: FinetuneConfig = FinetuneConfig(),
             model_config: ModelConfig | None = None, init: str | None = None,
             test_frames: Sequence[Frame] | None = None, val_frames: Sequence[Frame] | None = None,
             resume: bool = False, on_eval: Callable[[dict], None] | None = None) -> FinetuneResult:
    """Finetune a potential on labelled ``frames`` and write the best-validation checkpoint to ``out``.

    Validation frames are ``val_frames`` when given (then every frame of ``frames`` may train), else a
    ``cfg.val_fraction`` split of ``frames``; at most ``cfg.train_frames`` of the rest train (chosen with
    ``cfg.seed``). ``init`` is a checkpoint to start from (module docstring). ``test_frames``, when given, are
    evaluated with the best weights and stored in the checkpoint's metrics.
    """
    from maskpot.data import split_frames, summary
    from maskpot.models import build_potential

    out = Path(out)
    config, ckpt = resolve_init(init, model_config)
    if val_frames is not None:
        train, _, _ = split_frames(list(frames), n_train=cfg.train_frames, fractions=(1.0, 0.0, 0.0), seed=cfg.seed)
        val = list(val_frames)
    else:
        if not 0.0 < cfg.val_fraction < 1.0:
            raise ValueError(f"val fraction must be in (0, 1) without validation frames, got {cfg.val_fraction}")
        train, val, _ = split_frames(list(frames), n_train=cfg.train_frames,
                                     fractions=(1.0 - cfg.val_fraction, cfg.val_fraction, 0.0), seed=cfg.seed)
    if not train or not val:
        raise ValueError(f"finetune: need training and validation frames, got {len(train)} and {len(val)}")
    for f in list(train) + list(val):
        if f.energy is None or f.forces is None:
            raise ValueError(f"{f.source or 'frame'}: finetuning needs energy and forces on every frame")

    config = resolve_avg_neighbors(config, train)  # a number already when it comes from ``init``
    table = repulsion_table(list(train) + list(val), config.species, config.cutoff) \
        if cfg.repulsion and config.energy_centric else None
    config = replace(config, repulsion=table)

    torch.manual_seed(cfg.seed)
    dtype = torch_dtype(config)
    potential = build_potential(config).to(dtype)
    init_report = load_init(potential, ckpt) if ckpt is not None else None
    norm = fit_normalization(train, config.species)
    norm.apply_to(potential)

    weights = LossWeights(cfg.energy_weight if config.energy_centric else 0.0, cfg.force_weight)
    train_cache, val_cache = NeighborCache(), NeighborCache()

    if cfg.compile:
        from maskpot.train.compiled import CompiledEnergyForces

        predict_train = CompiledEnergyForces(potential)
    else:
        def predict_train(batch):
            return predict_batch(potential, batch, create_graph=True)

    def step_loss(step: int, idx: np.ndarray) -> torch.Tensor:
        batch = collate([train[k] for k in idx], config.cutoff, config.species, dtype, train_cache)
        energy, forces = predict_train(batch)
        return energy_force_loss(energy, forces, batch.energy, batch.forces, batch.n_atoms, norm.scale, weights)

    def evaluate(module: torch.nn.Module) -> dict:
        metrics = error_metrics(predict(module, val, cfg.batch_size, val_cache), config.energy_centric)
        return {"loss": validation_loss(metrics, norm.scale, cfg), "val_energy_mae": metrics["energy_mae"],
                "val_force_mae": metrics["force_mae"], "metrics": metrics}

    data = {"train": summary(train), "n_train": len(train), "n_val": len(val), "init": init,
            "init_part": init_report["part"] if init_report else None, "options": asdict(cfg)}
    test_metrics: dict | None = None

    def save(state: dict, step: int, metrics: dict) -> Path:
        nonlocal test_metrics
        potential.load_state_dict(state)
        potential.eval()
        if test_frames:
            test_metrics = error_metrics(predict(potential, list(test_frames), cfg.batch_size),
                                         config.energy_centric)
        save_checkpoint(out, potential, config, kind="finetuned", normalization=norm.to_dict(), data_summary=data,
                        metrics={"best_step": step, "val": metrics["metrics"], "test": test_metrics,
                                 "init": init_report})
        return out

    result, log_path = fit_checkpoint(
        out, LOG_COLUMNS, "finetune", potential, step_loss, len(train), evaluate, save, cfg, "finetune",
        {"model": config.to_dict(), "init": init, "n_train": len(train), "n_val": len(val)}, resume, on_eval)
    return FinetuneResult(potential, config, norm, result.best_step, result.best_metrics["metrics"], result.stopped,
                          test_metrics, init_report, log_path, result.rows)
