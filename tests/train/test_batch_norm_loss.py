"""Batching, normalisation, loss and metrics on small known inputs."""

import numpy as np
import pytest
import torch

from maskpot.data.frame import Frame
from maskpot.train.batch import NeighborCache, collate
from maskpot.train.loss import LossWeights, energy_force_loss
from maskpot.train.metrics import Predictions, error_metrics
from maskpot.train.normalization import fit_normalization


def test_collate_edges_shifts_and_cache(water_set):
    frames = water_set[:3]
    cache = NeighborCache()
    b = collate(frames, 3.5, [1, 8], torch.float64, cache)
    n = sum(len(f) for f in frames)
    assert b.positions.shape == (n, 3) and b.n_graphs == 3 and b.n_atoms.tolist() == [24, 24, 24]
    assert b.species_index.tolist()[:3] == [1, 0, 0]  # O, H, H with species [H, O]
    assert b.energy.shape == (3,) and b.forces.shape == (n, 3)
    i, j = b.edge_index
    assert bool((b.batch[i] == b.batch[j]).all())  # no edges between graphs
    d = b.edge_vectors().norm(dim=1)
    assert float(d.max()) < 3.5 and float(d.min()) > 0.5
    # shifts are Cartesian multiples of the 7 Angstrom box: periodic images are used
    assert np.allclose(np.round(b.shifts.numpy() / 7.0) * 7.0, b.shifts.numpy())
    assert float(b.shifts.abs().max()) == pytest.approx(7.0)
    # same frame objects -> cached arrays reused; moved positions -> recomputed
    e1, _ = cache.get(frames[0], 3.5)
    e2, _ = cache.get(frames[0], 3.5)
    assert e1 is e2 and len(cache) == 3
    moved = Frame(positions=frames[0].positions + 0.3, numbers=frames[0].numbers, cell=frames[0].cell, pbc=True)
    assert cache.get(moved, 3.5)[0] is not e1


def test_collate_unknown_element_names_frame_and_atom(water_set):
    f = water_set[0]
    bad = Frame(positions=f.positions, numbers=np.r_[f.numbers[:-1], 6], cell=f.cell, pbc=True, source="x.xyz#3")
    with pytest.raises(ValueError, match=r"x.xyz#3.*C.*atom 23"):
        collate([bad], 3.5, [1, 8], torch.float32)


def _frames_with(counts, energy_fn, forces=None):
    out = []
    for k, (nh, no) in enumerate(counts):
        numbers = [1] * nh + [8] * no
        pos = np.arange(3 * len(numbers), dtype=float).reshape(-1, 3)
        out.append(Frame(positions=pos, numbers=numbers, energy=energy_fn(nh, no),
                         forces=None if forces is None else forces[k]))
    return out


def test_normalization_recovers_per_species_energies():
    counts = [(2, 1), (4, 1), (3, 3), (6, 2), (1, 4)]
    frames = _frames_with(counts, lambda nh, no: -1.5 * nh - 3.25 * no)
    norm = fit_normalization(frames, [1, 8])
    assert norm.shift == pytest.approx([-1.5, -3.25], abs=1e-10)
    assert norm.scale == 1.0  # exact fit: zero residual std falls back to 1
    # with noise on the energies the scale is the std of the per-atom residual
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.1, len(counts))
    frames = _frames_with(counts, lambda nh, no: 0.0)
    for f, c, e in zip(frames, counts, noise):
        f.energy = -1.5 * c[0] - 3.25 * c[1] + e
    norm = fit_normalization(frames, [1, 8])
    counts_m = np.array(counts, float)
    shift, *_ = np.linalg.lstsq(counts_m, [f.energy for f in frames], rcond=None)
    resid = (np.array([f.energy for f in frames]) - counts_m @ shift) / counts_m.sum(1)
    assert norm.scale == pytest.approx(np.std(resid))


def test_normalization_collinear_composition_is_min_norm_and_scale_is_force_rms():
    forces = [np.full((3, 3), 2.0), np.full((3, 3), -2.0)]
    frames = _frames_with([(2, 1), (2, 1)], lambda nh, no: -15.0, forces)
    norm = fit_normalization(frames, [1, 8])
    a, b = norm.shift
    assert 2 * a + b == pytest.approx(-15.0)
    assert [a, b] == pytest.approx([-15.0 * 2 / 5, -15.0 / 5])  # minimum norm: parallel to (2, 1)
    assert norm.scale == pytest.approx(2.0)


def test_loss_values():
    n_atoms = torch.tensor([2, 4])
    e_ref, e = torch.tensor([0.0, 0.0]), torch.tensor([0.2, -0.8])  # per atom 0.1 and 0.2
    f_ref, f = torch.zeros(6, 3), torch.full((6, 3), 0.3)
    w = LossWeights(energy=10.0, forces=2.0)
    loss = energy_force_loss(e, f, e_ref, f_ref, n_atoms, 0.5, w)
    assert loss.item() == pytest.approx(10.0 * 0.15 / 0.5 + 2.0 * 0.3 / 0.5)
    assert energy_force_loss(None, f, None, f_ref, n_atoms, 1.0, w).item() == pytest.approx(0.6)
    with pytest.raises(ValueError):
        energy_force_loss(None, None, None, None, n_atoms, 1.0, w)


def test_error_metrics_units():
    p = Predictions(energy_ref=np.array([0.0, 0.0]), energy_pred=np.array([0.192, -0.384]),
                    n_atoms=np.array([192, 192]), forces_ref=np.zeros((2, 3)),
                    forces_pred=np.array([[0.1, -0.1, 0.0], [0.0, 0.0, 0.0]]))
    m = error_metrics(p)
    assert m["energy_mae"] == pytest.approx(1.5)  # meV/atom
    assert m["energy_rmse"] == pytest.approx(np.sqrt((1 + 4) / 2))
    assert m["force_mae"] == pytest.approx(200 / 6)  # meV/Angstrom
    assert m["force_rmse"] == pytest.approx(np.sqrt(2 * 100 ** 2 / 6))
    assert error_metrics(p, energy_centric=False)["energy_mae"] is None
