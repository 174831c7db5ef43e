"""Build a Potential from a ModelConfig."""
from __future__ import annotations

import torch
from torch import nn

from maskpot.models.config import ModelConfig
from maskpot.models.potential import Potential, _head_for

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_backbone(config: ModelConfig) -> nn.Module:
    """The backbone named by ``config.backbone`` (painn, egnn, gns), in float32 (cast by build_potential)."""
    from maskpot.models.egnn import EGNN
    from maskpot.models.gns import GNS
    from maskpot.models.painn import PaiNN

    classes = {"painn": PaiNN, "egnn": EGNN, "gns": GNS}
    if config.backbone not in classes:
        raise ValueError(f"unknown backbone {config.backbone!r}; choose one of {', '.join(classes)}")
    if config.avg_neighbors is None:
        raise ValueError("avg_neighbors is None: resolve it from the training data "
                         "(maskpot.models.config.resolve_avg_neighbors) or give a number")
    if not config.avg_neighbors > 0:
        raise ValueError(f"avg_neighbors must be positive, got {config.avg_neighbors}")
    return classes[config.backbone](
        n_species=len(config.species), cutoff=config.cutoff, hidden=config.hidden, layers=config.layers,
        num_rbf=config.num_rbf, avg_neighbors=config.avg_neighbors,
    )


def torch_dtype(config: ModelConfig) -> torch.dtype:
    if config.dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {config.dtype!r}; choose float32 or float64")
    return _DTYPES[config.dtype]


def build_potential(config: ModelConfig) -> Potential:
    """A freshly initialised Potential (backbone + matching head, and the short-range repulsion as a prior when
    ``config.repulsion`` holds a table) in ``config.dtype``."""
    dtype = torch_dtype(config)
    if len(set(config.species)) != len(config.species) or not config.species:
        raise ValueError(f"model species must be distinct atomic numbers, got {config.species}")
    from maskpot.models.repulsion import ZBLRepulsion

    priors = [ZBLRepulsion(config.species, config.repulsion, config.repulsion_width)] if config.repulsion else []
    pot = Potential(build_backbone(config), _head_for(config.energy_centric, config.hidden), config.species,
                    config.cutoff, config.energy_centric, config.layers, priors)
    return pot.to(dtype)  # floating parameters and buffers only; z_to_species_index stays int64
