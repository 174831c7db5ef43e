"""Checkpoints: one torch.save dict per file, written atomically, read back with clear one-line errors.

Layout (the project's contract)::

    format="maskpot-checkpoint", format_version, kind ("pretrained" | "finetuned"), config (ModelConfig dict),
    state_dict, species (atomic numbers), cutoff (Angstrom), units, normalization, data, metrics,
    versions {maskpot, torch}

``state_dict`` is the saved module's state: a ``Potential`` for finetuned checkpoints, the pretraining model
(``backbone.*`` plus ``heads.*``) for pretrained ones. In both, backbone weights carry the ``backbone.`` prefix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch

import maskpot
from maskpot.atomic import atomic_write
from maskpot.errors import first_line
from maskpot.export.metadata import refuse_export
from maskpot.models.config import ModelConfig

FORMAT = "maskpot-checkpoint"
FORMAT_VERSION = 1
KINDS = ("pretrained", "finetuned")
UNITS = {"length": "Angstrom", "energy": "eV", "force": "eV/Angstrom"}
BACKBONE_PREFIX = "backbone."


@dataclass
class Checkpoint:
    """A checkpoint read back from disk (see module docstring for the meaning of each field)."""

    path: str
    kind: str
    config: ModelConfig
    state_dict: dict
    species: list[int]
    cutoff: float
    units: dict
    normalization: dict | None = None
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def backbone_state(self) -> dict:
        """The backbone's weights with the ``backbone.`` prefix removed."""
        n = len(BACKBONE_PREFIX)
        return {k[n:]: v for k, v in self.state_dict.items() if k.startswith(BACKBONE_PREFIX)}


def _plain(obj):
    """JSON-plain copy (numpy scalars -> float/int) so the file loads with ``torch.load(weights_only=True)``."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else
                                 (o.tolist() if hasattr(o, "tolist") else str(o))))


def save_checkpoint(path: str | os.PathLike, module: torch.nn.Module, config: ModelConfig, kind: str = "finetuned",
                    normalization: dict | None = None, data_summary: dict | None = None,
                    metrics: dict | None = None) -> None:
    """Write ``module``'s weights and everything needed to rebuild it to ``path`` (atomically)."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
        "species": [int(z) for z in config.species],
        "cutoff": float(config.cutoff),
        "units": dict(UNITS),
        "normalization": _plain(normalization),
        "data": _plain(data_summary or {}),
        "metrics": _plain(metrics or {}),
        "versions": {"maskpot": maskpot.__version__, "torch": str(torch.__version__)},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint; a missing file raises FileNotFoundError, anything unreadable a one-line ValueError."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    refuse_export(path, "a checkpoint")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/garbage files
        raise ValueError(f"{path}: not a readable maskpot checkpoint ({first_line(exc)})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"{path}: not a maskpot checkpoint (missing format={FORMAT!r})")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format_version {raw['format_version']} is newer than this maskpot "
                         f"({FORMAT_VERSION})")
    missing = [k for k in ("kind", "config", "state_dict", "species", "cutoff") if k not in raw]
    if missing:
        raise ValueError(f"{path}: corrupt maskpot checkpoint (missing {', '.join(missing)})")
    if raw["kind"] not in KINDS:
        raise ValueError(f"{path}: unknown checkpoint kind {raw['kind']!r}")
    return Checkpoint(path=path, kind=raw["kind"], config=ModelConfig.from_dict(raw["config"]),
                      state_dict=current_names(raw["state_dict"]), species=list(raw["species"]),
                      cutoff=float(raw["cutoff"]),
                      units=raw.get("units", dict(UNITS)), normalization=raw.get("normalization"),
                      data=raw.get("data") or {}, metrics=raw.get("metrics") or {},
                      versions=raw.get("versions") or {}, format_version=int(raw["format_version"]))


def current_names(state_dict: dict) -> dict:
    """``state_dict`` with the buffers of ``maskpot.models.potential.RENAMED_BUFFERS`` under their current names
    (checkpoints written before the renames load unchanged otherwise)."""
    from maskpot.models.potential import RENAMED_BUFFERS

    def current(key: str) -> str:
        head, _, last = key.rpartition(".")
        return (head + "." if head else "") + RENAMED_BUFFERS.get(last, last)

    return {current(k): v for k, v in state_dict.items()}


def load_potential(path: str | os.PathLike):
    """Rebuild the finetuned ``Potential`` stored at ``path`` (in eval mode)."""
    from maskpot.models import build_potential

    ckpt = load_checkpoint(path)
    if ckpt.kind != "finetuned":
        raise ValueError(f"{ckpt.path}: is a {ckpt.kind} checkpoint (no trained energy head); "
                         f"finetune it first: maskpot finetune DATA --init {ckpt.path}")
    potential = build_potential(ckpt.config)
    result = potential.load_state_dict(ckpt.state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{ckpt.path}: weights do not match its config (missing {list(result.missing_keys)[:3]}, "
                         f"unexpected {list(result.unexpected_keys)[:3]})")
    return potential.eval()


def add_repulsion(checkpoint: str | os.PathLike, frames, out: str | os.PathLike) -> dict[str, float]:
    """Write ``checkpoint`` to ``out`` with the short-range repulsion of ``maskpot.models.repulsion`` set from
    ``frames`` (the model's training data, or data like it): what finetuning now does by itself, for models
    finetuned before. Weights, normalisation and metrics are kept. Returns the repulsion table."""
    from dataclasses import replace

    from maskpot.models.repulsion import repulsion_table

    ckpt = load_checkpoint(checkpoint)
    if ckpt.kind != "finetuned" or not ckpt.config.energy_centric:
        raise ValueError(f"{ckpt.path}: the repulsion needs a finetuned energy-centric checkpoint (painn, egnn); "
                         f"this is a {ckpt.kind} {ckpt.config.backbone}")
    table = repulsion_table(frames, ckpt.config.species, ckpt.config.cutoff)
    if not table:
        raise ValueError(f"no pair of the model's elements is closer than its cutoff in the {len(frames)} frames given")
    potential = load_potential(checkpoint)
    config = replace(ckpt.config, repulsion=table)
    save_checkpoint(out, potential, config, kind="finetuned", normalization=ckpt.normalization,
                    data_summary={**ckpt.data, "repulsion_from": f"{len(frames)} frames"}, metrics=ckpt.metrics)
    return table
