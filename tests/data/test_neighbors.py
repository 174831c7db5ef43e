import itertools

import numpy as np
import pytest

from maskpot.data.frame import Frame
from maskpot.data.neighbors import mean_neighbors, neighbor_list
from maskpot.data.tip3p import water_box_positions


def _brute_force(positions, cell, pbc, cutoff, reach=3):
    ranges = [range(-reach, reach + 1) if p else range(1) for p in pbc]
    pairs = set()
    for shift in itertools.product(*ranges):
        offset = np.array(shift) @ cell if cell is not None else np.zeros(3)
        d = np.linalg.norm(positions[None, :, :] + offset - positions[:, None, :], axis=-1)
        for i, j in zip(*np.nonzero(d < cutoff)):
            if i == j and not any(shift):
                continue
            pairs.add((int(i), int(j), *shift))
    return pairs


def _as_set(i, j, s):
    return {(int(a), int(b), *map(int, c)) for a, b, c in zip(i, j, s)}


CELL = np.array([[4.0, 0.0, 0.0], [1.2, 4.3, 0.0], [-0.8, 0.9, 4.6]])


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True)])
# 3.1 A exceeds half of every cell vector (several images of one atom); 4.5 A exceeds the shortest vector (self images)
@pytest.mark.parametrize("cutoff", [1.9, 3.1, 4.5])
def test_matches_brute_force_on_triclinic_cell(pbc, cutoff):
    rng = np.random.default_rng(0)
    positions = rng.random((12, 3)) @ CELL
    i, j, s = neighbor_list(positions, CELL, pbc, cutoff)
    assert i.dtype == j.dtype == s.dtype == np.int64 and s.shape == (len(i), 3)
    got = _as_set(i, j, s)
    assert len(got) == len(i)  # no duplicates
    assert got == _brute_force(positions, CELL, pbc, cutoff)
    vec = positions[j] - positions[i] + s @ CELL
    assert np.all(np.linalg.norm(vec, axis=1) < cutoff)
    if cutoff > 0.5 * np.linalg.norm(CELL, axis=1).max():
        pairs = list(zip(i.tolist(), j.tolist()))
        assert len(set(pairs)) < len(pairs)  # some atom pairs with several images of another
    assert np.any(i == j) == (cutoff > np.linalg.norm(CELL, axis=1).min())  # self images only beyond a cell vector


def test_non_periodic_without_cell():
    rng = np.random.default_rng(1)
    positions = rng.random((15, 3)) * 5
    i, j, s = neighbor_list(positions, None, False, 2.0)
    assert np.all(s == 0)
    assert _as_set(i, j, s) == _brute_force(positions, None, (False, False, False), 2.0)
    assert _as_set(j, i, s) == _as_set(i, j, s)  # both directions


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell is None"):
        neighbor_list(np.zeros((2, 3)), None, True, 2.0)
    with pytest.raises(ValueError, match="cutoff must be positive"):
        neighbor_list(np.zeros((2, 3)), None, False, 0.0)


def test_mean_neighbors_is_the_brute_force_count_per_atom():
    """Directed pairs within the cutoff (periodic images included) over atoms, pooled over frames of different
    sizes: a water box, a triclinic cell whose cutoff reaches several images, and a non-periodic molecule."""
    rng = np.random.default_rng(2)
    box = np.eye(3) * 7.0
    water = Frame(positions=water_box_positions(8, 7.0, rng), numbers=np.tile([8, 1, 1], 8), cell=box, pbc=True)
    tri = Frame(positions=rng.random((12, 3)) @ CELL, numbers=np.full(12, 8), cell=CELL, pbc=(True, False, True))
    molecule = Frame(positions=water.positions[:9], numbers=water.numbers[:9])  # three waters, no cell
    cutoff = 4.5  # beyond the triclinic cell's shortest vector: self images too
    pairs = [_brute_force(f.positions, f.cell, f.pbc, cutoff) for f in (water, tri, molecule)]
    assert all(pairs)
    assert mean_neighbors([water, tri, molecule], cutoff) == pytest.approx(sum(map(len, pairs)) / (24 + 12 + 9))
    assert mean_neighbors([molecule], cutoff) == pytest.approx(len(pairs[2]) / 9)
    with pytest.raises(ValueError, match="no atom of the 1 frame.* has a neighbour within 2 A"):
        mean_neighbors([Frame(positions=np.array([[0.0, 0, 0], [5.0, 0, 0]]), numbers=np.array([8, 8]))], 2.0)
