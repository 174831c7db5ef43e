"""Masking and denoising: pure functions on small hand-built and generated structures."""

import numpy as np
import pytest
import torch
from ase.build import molecule

from maskpot.data.frame import Frame
from maskpot.data.molecules import water_molecules
from maskpot.data.tip3p import water_box_positions
from maskpot.pretrain.denoise import denoise_loss, noisy_frame
from maskpot.pretrain.masking import mask_frame, masked_cosine_loss


def water_box(n_mol=8, box=7.0, seed=0) -> Frame:
    pos = water_box_positions(n_mol, box, np.random.default_rng(seed))
    return Frame(positions=pos, numbers=np.tile([8, 1, 1], n_mol), cell=np.eye(3) * box, pbc=True, source="box")


def test_water_removes_one_h_from_exactly_the_picked_molecules():
    frame = water_box(8)
    mols = water_molecules(frame)
    m = mask_frame(frame, 0.5, np.random.default_rng(1))
    assert len(m.removed) == 4
    assert np.all(frame.numbers[m.removed] == 1)
    picked = [row for row in mols if np.isin(row[1:], m.removed).any()]
    assert len(picked) == 4
    assert all(np.isin(row[1:], m.removed).sum() == 1 for row in picked)  # one H per picked molecule
    # the reduced frame is the original without exactly the removed atoms
    assert len(m.frame) == len(frame) - 4
    assert np.array_equal(m.kept, np.setdiff1d(np.arange(len(frame)), m.removed))
    assert np.allclose(m.frame.positions, frame.positions[m.kept])
    # flags: exactly the O and the remaining H of each picked molecule
    expected = np.sort(np.concatenate([row[~np.isin(row, m.removed)] for row in picked]))
    assert np.array_equal(np.sort(m.kept[m.mask_flag == 1]), expected)
    assert m.mask_flag.sum() == 8
    assert np.all(m.target[m.mask_flag == 0] == 0)
    assert np.allclose(np.linalg.norm(m.target[m.mask_flag == 1], axis=1), 1.0)
    assert m.frame.energy is None and m.frame.forces is None


def test_ratio_one_masks_every_molecule_and_rounding():
    frame = water_box(8)
    assert len(mask_frame(frame, 1.0, np.random.default_rng(0)).removed) == 8
    assert len(mask_frame(frame, 0.01, np.random.default_rng(0)).removed) == 1  # at least one
    with pytest.raises(ValueError, match="mask ratio"):
        mask_frame(frame, 0.0, np.random.default_rng(0))


def test_targets_point_to_removed_h_across_the_periodic_boundary():
    box = 10.0
    o = np.array([0.2, 5.0, 5.0])
    h1 = o + [-0.9572, 0.0, 0.0]  # outside the box on the low-x side: wrap it
    h2 = o + [0.24, 0.9266, 0.0]
    pos = np.array([o, h1 % box, h2])
    frame = Frame(positions=pos, numbers=[8, 1, 1], cell=np.eye(3) * box, pbc=True, source="edge")
    seen = set()
    for seed in range(20):
        m = mask_frame(frame, 1.0, np.random.default_rng(seed))
        (r,) = m.removed
        seen.add(int(r))
        other = 2 if r == 1 else 1
        true_h = {1: h1, 2: h2}
        assert m.mask_flag.tolist() == [1.0, 1.0]
        t_o = m.target[0]
        want_o = (true_h[r] - o) / np.linalg.norm(true_h[r] - o)
        assert np.allclose(t_o, want_o, atol=1e-12)
        d = true_h[r] - true_h[other]
        assert np.allclose(m.target[1], d / np.linalg.norm(d), atol=1e-12)
    assert seen == {1, 2}  # the coin flip picks either hydrogen


def test_non_water_methanol_masks_only_h_bonded_to_heavy_atoms():
    frame = Frame.from_atoms(molecule("CH3OH"), source="methanol")
    c, o = np.flatnonzero(frame.numbers == 6)[0], np.flatnonzero(frame.numbers == 8)[0]
    d = np.linalg.norm(frame.positions[:, None] - frame.positions[None], axis=-1)
    h = np.flatnonzero(frame.numbers == 1)
    ch = h[d[h, c] < d[h, o]]
    oh = h[d[h, o] < d[h, c]]
    assert len(ch) == 3 and len(oh) == 1
    m = mask_frame(frame, 1.0, np.random.default_rng(3))  # both groups: C(H3) and O(H)
    assert len(m.removed) == 2
    assert np.isin(m.removed, ch).sum() == 1 and np.isin(m.removed, oh).sum() == 1
    flagged = set(m.kept[m.mask_flag == 1].tolist())
    assert flagged == {int(c), int(o)} | (set(ch.tolist()) - set(m.removed.tolist()))
    o_new = int(np.flatnonzero(m.kept == o)[0])
    want = frame.positions[oh[0]] - frame.positions[o]
    assert np.allclose(m.target[o_new], want / np.linalg.norm(want))
    half = mask_frame(frame, 0.5, np.random.default_rng(0))
    assert len(half.removed) == 1


def test_no_hydrogen_to_mask_is_an_error():
    frame = Frame(positions=[[0, 0, 0], [1.2, 0, 0]], numbers=[8, 8], source="o2")
    with pytest.raises(ValueError, match="o2"):
        mask_frame(frame, 0.5, np.random.default_rng(0))


def test_cosine_loss_only_counts_flagged_atoms():
    target = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    flag = torch.tensor([1.0, 1.0, 0.0])
    pred = torch.tensor([[2.0, 0, 0], [0, 3.0, 0], [0, 0, -5.0]])
    assert masked_cosine_loss(pred, target, flag).item() == pytest.approx(0.0, abs=1e-7)
    assert masked_cosine_loss(-pred, target, flag).item() == pytest.approx(2.0)
    pred2 = torch.tensor([[2.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]])  # second one orthogonal
    assert masked_cosine_loss(pred2, target, flag).item() == pytest.approx(0.5)


def test_denoise_noise_and_target():
    frame = water_box(8)
    noisy, target = noisy_frame(frame, 0.05, np.random.default_rng(0))
    assert np.allclose((noisy.positions - frame.positions) / 0.05, target)
    assert abs(np.std(target) - 1.0) < 0.2
    assert noisy.energy is None
    t = torch.as_tensor(target)
    assert denoise_loss(t, t).item() == 0.0
    assert denoise_loss(torch.zeros_like(t), t).item() == pytest.approx(np.mean(target ** 2))
    with pytest.raises(ValueError, match="sigma"):
        noisy_frame(frame, 0.0, np.random.default_rng(0))
