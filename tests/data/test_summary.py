import json

import numpy as np
import pytest

from maskpot.data import Frame, read, summary


def test_summary_of_deepmd_water(shared_data_dir):
    frames = read(shared_data_dir / "water" / "deepmd_water")
    info = summary(frames)
    json.dumps(info)  # JSON-able
    assert info["n_frames"] == 400 and info["n_atoms_min"] == info["n_atoms_max"] == 192
    assert info["species"] == {"H": 400 * 128, "O": 400 * 64}
    assert info["periodic"] == "all" and info["has_energy"] and info["has_forces"]
    assert info["energy_per_atom_mean"] * 3 == pytest.approx(-467.87, abs=0.01)
    forces = np.concatenate([f.forces for f in frames])
    assert info["force_rms"] == pytest.approx(np.sqrt(np.mean(forces ** 2)))
    assert info["force_max"] == pytest.approx(np.linalg.norm(forces, axis=1).max())


def test_summary_without_labels_and_mixed_periodicity():
    frames = [Frame(positions=np.zeros((1, 3)), numbers=[6]),
              Frame(positions=np.zeros((2, 3)), numbers=[1, 8], cell=np.eye(3) * 5, pbc=True, energy=-2.0)]
    info = summary(frames)
    json.dumps(info)
    assert info["periodic"] == "mixed" and (info["n_atoms_min"], info["n_atoms_max"]) == (1, 2)
    assert info["species"] == {"H": 1, "C": 1, "O": 1}
    assert not info["has_energy"] and info["energy_per_atom_mean"] is None and info["force_rms"] is None
    with pytest.raises(ValueError, match="no frames"):
        summary([])
