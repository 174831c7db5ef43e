"""Checkpoints written before the buffer renames (``energy_scale`` -> ``output_scale``, ``z_to_species`` ->
``z_to_species_index``) load into the current Potential with the same numbers."""

from __future__ import annotations

import torch

from maskpot.models.potential import RENAMED_BUFFERS
from maskpot.train.checkpoint import load_checkpoint, load_potential


def test_checkpoint_with_the_old_buffer_names_loads(checkpoint_factory, tmp_path):
    path = checkpoint_factory("painn-rep", "float64")
    raw = torch.load(path, weights_only=True)
    current = {new: old for old, new in RENAMED_BUFFERS.items()}
    raw["state_dict"] = {current.get(k, k): v for k, v in raw["state_dict"].items()}
    assert {"energy_scale", "z_to_species"} <= set(raw["state_dict"])  # written as before the renames
    old = tmp_path / "old.ckpt"
    torch.save(raw, old)

    assert set(load_checkpoint(old).state_dict) == set(load_checkpoint(path).state_dict)
    new_pot, old_pot = load_potential(path), load_potential(old)
    assert float(old_pot.output_scale) == 0.5 and int(old_pot.z_to_species_index[8]) == 1
    species_index = torch.tensor([1, 0, 0])
    edge_index = torch.tensor([[0, 0, 1, 2], [1, 2, 0, 0]])
    edge_vec = torch.tensor([[0.96, 0.0, 0.0], [-0.24, 0.93, 0.0], [-0.96, 0.0, 0.0], [0.24, -0.93, 0.0]],
                            dtype=torch.float64)
    for a, b in zip(old_pot(species_index, edge_index, edge_vec), new_pot(species_index, edge_index, edge_vec)):
        assert torch.equal(a, b)


def test_state_with_the_old_buffer_names_loads_into_a_potential(checkpoint_factory):
    """What resuming a run from a state file written before the renames does (maskpot.train.loop)."""
    potential = load_potential(checkpoint_factory("painn", "float64"))
    state = {("energy_scale" if k == "output_scale" else k): v for k, v in potential.state_dict().items()}
    state["energy_scale"] = torch.tensor(2.5, dtype=torch.float64)
    potential.load_state_dict(state)
    assert float(potential.output_scale) == 2.5
