"""Torch cell-list neighbour search against brute force over all periodic images."""

import itertools

import numpy as np
import pytest
import torch

from maskpot.models.neighbors import neighbor_pairs, neighbor_pairs_open


def brute_force(pos: np.ndarray, cell, pbc, cutoff: float) -> set:
    """All (i, j, sa, sb, sc) with |pos[j] - pos[i] + s @ cell| < cutoff, excluding i == j at zero shift."""
    if cell is None:
        cell = np.eye(3)
        pbc = [False] * 3
    cell = np.asarray(cell)
    vol = abs(np.linalg.det(cell))
    heights = [vol / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    ranges = [range(-int(np.ceil(cutoff / h)) - 1, int(np.ceil(cutoff / h)) + 2) if p else [0]
              for h, p in zip(heights, pbc)]
    out = set()
    for s in itertools.product(*ranges):
        d = pos[None, :, :] - pos[:, None, :] + np.array(s) @ cell
        ii, jj = np.nonzero(np.sum(d * d, axis=-1) < cutoff**2)
        for i, j in zip(ii, jj):
            if i != j or any(s):
                out.add((int(i), int(j), *s))
    return out


def as_set(edge_index, shifts) -> set:
    sh = torch.round(shifts).to(torch.int64)
    assert torch.equal(sh.to(shifts.dtype), shifts), "shifts must be integer-valued"
    return {(int(i), int(j), *map(int, s)) for (i, j), s in zip(edge_index.T.tolist(), sh.tolist())}


rng = np.random.default_rng(3)
CASES = {
    "cubic": (rng.uniform(-2, 12, (60, 3)), np.eye(3) * 10.0, [True] * 3, 3.5),
    "triclinic": (rng.uniform(0, 8, (40, 3)), np.array([[8.0, 0, 0], [3.0, 7.0, 0], [-2.0, 1.5, 6.5]]), [True] * 3, 3.0),
    "small_box": (rng.uniform(0, 3, (5, 3)), np.array([[3.0, 0, 0], [0.5, 2.8, 0], [0.3, -0.4, 3.2]]), [True] * 3, 4.0),
    "slab": (rng.uniform(0, 6, (30, 3)), np.eye(3) * 6.0, [True, True, False], 2.5),
    "open": (rng.uniform(0, 9, (50, 3)), None, [False] * 3, 3.0),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_brute_force(name, dtype):
    pos, cell, pbc, cutoff = CASES[name]
    pos_t = torch.tensor(pos, dtype=dtype)
    cell_t = None if cell is None else torch.tensor(cell, dtype=dtype)
    edge_index, shifts = neighbor_pairs(pos_t, cell_t, torch.tensor(pbc), cutoff)
    assert edge_index.dtype == torch.int64 and shifts.dtype == dtype
    got = as_set(edge_index, shifts)
    assert len(got) == edge_index.shape[1], "duplicate pairs"
    expected = brute_force(pos_t.double().numpy(), cell, pbc, cutoff)
    if dtype == torch.float64:
        assert got == expected
    else:  # float32: only pairs within rounding of the cutoff may differ
        cell_np = np.eye(3) if cell is None else np.asarray(cell)
        for t in got ^ expected:
            d = pos[t[1]] - pos[t[0]] + np.array(t[2:]) @ cell_np
            assert abs(np.linalg.norm(d) - cutoff) < 1e-4
    # edge vectors really are shorter than the cutoff in the input dtype
    if cell_t is not None:
        vec = pos_t[edge_index[1]] - pos_t[edge_index[0]] + shifts @ cell_t
        assert bool((torch.linalg.vector_norm(vec, dim=-1) < cutoff).all())


def test_many_images_when_cutoff_exceeds_box():
    pos, cell, pbc, cutoff = CASES["small_box"]
    edge_index, shifts = neighbor_pairs(torch.tensor(pos), torch.tensor(cell), torch.tensor(pbc), cutoff)
    assert int(shifts.abs().max()) >= 2  # neighbours two cells away are found
    # a single atom in a small box sees its own images
    one, sh = neighbor_pairs(torch.zeros(1, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64) * 2.0,
                             torch.tensor([True] * 3), 2.5)
    assert as_set(one, sh) == brute_force(np.zeros((1, 3)), np.eye(3) * 2.0, [True] * 3, 2.5)


def test_torchscript_equals_eager():
    scripted = torch.jit.script(neighbor_pairs)
    scripted_open = torch.jit.script(neighbor_pairs_open)
    for name, (pos, cell, pbc, cutoff) in CASES.items():
        pos_t = torch.tensor(pos)
        cell_t = None if cell is None else torch.tensor(cell)
        e1, s1 = neighbor_pairs(pos_t, cell_t, torch.tensor(pbc), cutoff)
        e2, s2 = scripted(pos_t, cell_t, torch.tensor(pbc), cutoff)
        assert torch.equal(e1, e2) and torch.equal(s1, s2), name
    pos_t = torch.tensor(CASES["open"][0])
    assert torch.equal(scripted_open(pos_t, 3.0), neighbor_pairs_open(pos_t, 3.0))
    e, s = neighbor_pairs(pos_t, None, torch.tensor([False] * 3), 3.0)
    assert torch.equal(e, neighbor_pairs_open(pos_t, 3.0)) and not bool(s.any())


def test_errors_and_empty():
    with pytest.raises(ValueError, match="no cell"):
        neighbor_pairs(torch.zeros(2, 3), None, torch.tensor([True, True, True]), 3.0)
    with pytest.raises(ValueError, match="singular"):
        neighbor_pairs(torch.rand(2, 3), torch.zeros(3, 3), torch.tensor([True, True, True]), 3.0)
    e, s = neighbor_pairs(torch.zeros(0, 3), torch.eye(3) * 5, torch.tensor([True] * 3), 3.0)
    assert e.shape == (2, 0) and s.shape == (0, 3)
    far = torch.tensor([[0.0, 0, 0], [100.0, 0, 0]])
    assert neighbor_pairs_open(far, 3.0).shape == (2, 0)
