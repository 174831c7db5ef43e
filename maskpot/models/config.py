"""Typed configuration of a potential: backbone, species, cutoff and sizes."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from maskpot.data.frame import Frame

logger = logging.getLogger(__name__)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a potential's architecture (weights live in the checkpoint).

    The defaults are the CLI's: measured on DeePMD water on 2 CPU cores, a 2-layer 4 Angstrom PaiNN trains in
    minutes (a 5 Angstrom cutoff was 2-5x slower per frame) and has an 8 Angstrom receptive field.

    Attributes:
        backbone: ``painn`` (default, energy-centric), ``egnn`` (energy-centric) or ``gns`` (force-centric).
        species: atomic numbers the model knows, in the order of its embedding table.
        cutoff: radial cutoff in Angstrom.
        hidden: width of scalar (and vector) features.
        layers: message-passing layers; the receptive field is ``layers * cutoff`` Angstrom.
        num_rbf: radial basis functions on [0, cutoff].
        dtype: ``float32`` or ``float64``.
        avg_neighbors: sums of messages over neighbours are divided by this (keeps features O(1) in liquids).
            None (default) = from the training data: the mean number of neighbours within ``cutoff`` per atom
            of the training frames (``resolve_avg_neighbors``, as MACE's avg_num_neighbors), computed when a
            fresh model is built for training; checkpoints always store the number.
        repulsion: per element pair, the distance (A) below which ZBL repulsion switches on, {"8-8": 2.25, ...}:
            the training data's closest distance minus 0.1 A (maskpot.models.repulsion); None = none. Set by
            finetuning.
        repulsion_width: A over which that repulsion switches on.
    """

    backbone: str = "painn"
    species: list[int] = field(default_factory=lambda: [1, 8])
    cutoff: float = 4.0
    hidden: int = 64
    layers: int = 2
    num_rbf: int = 16
    dtype: str = "float32"
    avg_neighbors: float | None = None
    repulsion: dict[str, float] | None = None
    repulsion_width: float = 0.3

    @property
    def energy_centric(self) -> bool:
        return self.backbone != "gns"

    @property
    def receptive_field(self) -> float:
        return self.layers * self.cutoff

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def resolve_avg_neighbors(config: ModelConfig, frames: Sequence[Frame]) -> ModelConfig:
    """``config`` with ``avg_neighbors`` computed from the training ``frames`` when it is None
    (``maskpot.data.neighbors.mean_neighbors`` at ``config.cutoff``); ``config`` itself when it holds a number."""
    if config.avg_neighbors is not None:
        return config
    from maskpot.data.neighbors import mean_neighbors

    value = mean_neighbors(frames, config.cutoff)
    logger.info("avg_neighbors = %.4f (neighbours within %g A per atom over %d training frames)", value,
                config.cutoff, len(frames))
    return replace(config, avg_neighbors=value)
