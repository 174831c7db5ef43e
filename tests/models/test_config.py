"""ModelConfig's avg_neighbors: None means "from the training data", resolved before a model is built."""

import dataclasses
import logging

import numpy as np
import pytest

from maskpot.data.frame import Frame
from maskpot.data.neighbors import mean_neighbors
from maskpot.models import ModelConfig, build_potential, resolve_avg_neighbors
from tests.models.water import water_positions


def box_frames() -> list[Frame]:
    return [Frame(positions=water_positions(2, 6.2, seed=s), numbers=np.tile([8, 1, 1], 8), cell=np.eye(3) * 6.2,
                  pbc=True) for s in range(2)]


def test_resolve_computes_none_from_the_frames_and_keeps_a_number(caplog):
    config = ModelConfig(cutoff=3.0)
    assert config.avg_neighbors is None  # the default: from the training data
    with caplog.at_level(logging.INFO, logger="maskpot.models.config"):
        resolved = resolve_avg_neighbors(config, box_frames())
    assert resolved.avg_neighbors == pytest.approx(mean_neighbors(box_frames(), 3.0))
    assert dataclasses.replace(resolved, avg_neighbors=None) == config  # nothing else changes
    assert f"avg_neighbors = {resolved.avg_neighbors:.4f}" in caplog.text
    fixed = ModelConfig(cutoff=3.0, avg_neighbors=12.0)
    assert resolve_avg_neighbors(fixed, box_frames()) is fixed
    assert ModelConfig.from_dict(resolved.to_dict()) == resolved  # stored as a number, read back as one


def test_build_potential_needs_a_resolved_positive_number():
    with pytest.raises(ValueError, match="avg_neighbors is None: resolve it from the training data") as info:
        build_potential(ModelConfig())
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="avg_neighbors must be positive, got 0.0"):
        build_potential(ModelConfig(avg_neighbors=0.0))
    assert build_potential(ModelConfig(avg_neighbors=16.0)).backbone.norm == pytest.approx(1 / 16.0)
