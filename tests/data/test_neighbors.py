import itertools

import numpy as np
import pytest

from maskpot.data.neighbors import neighbor_list


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
