import numpy as np
import pytest
from ase.geometry import get_distances

from maskpot.data import Frame, read
from maskpot.data.molecules import hydrogen_parents, water_molecules


def _check_waters(frame, rows, n):
    assert rows.shape == (n, 3)
    assert np.all(frame.numbers[rows[:, 0]] == 8) and np.all(frame.numbers[rows[:, 1:]] == 1)
    assert sorted(rows.ravel()) == list(range(len(frame)))  # every atom in exactly one molecule
    _, d = get_distances(frame.positions[rows[:, 0]], frame.positions[rows[:, 1]], cell=frame.cell, pbc=frame.pbc)
    assert np.all(np.diag(d) < 1.25)


def test_deepmd_waters(shared_data_dir):
    frame = read(shared_data_dir / "water" / "deepmd_water" / "data_0")[0]
    rows = water_molecules(frame)
    _check_waters(frame, rows, 64)
    assert list(rows[:, 0]) == list(range(64))


def test_tip3p_waters_are_in_generation_order(tip3p_water_frames):
    for frame in tip3p_water_frames:
        rows = water_molecules(frame)
        _check_waters(frame, rows, 32)
        assert np.array_equal(rows, np.arange(96).reshape(32, 3))


def test_parent_across_the_cell_boundary():
    # H at x=9.7 belongs to the O at x=0.2 through the periodic boundary (0.5 A), not the O at x=8.0 (1.7 A)
    frame = Frame(positions=[[0.2, 5, 5], [9.7, 5, 5], [8.0, 5, 5]], numbers=[8, 1, 8], cell=np.eye(3) * 10, pbc=True)
    assert list(hydrogen_parents(frame)) == [-1, 0, -1]
    open_frame = Frame(positions=frame.positions, numbers=frame.numbers)
    assert list(hydrogen_parents(open_frame)) == [-1, 2, -1]


def test_water_with_one_h_names_frame_and_atom(tip3p_water_frames):
    frame = tip3p_water_frames[0]
    keep = np.delete(np.arange(len(frame)), 5)  # drop the second H of molecule 1 (O index 3)
    broken = Frame(positions=frame.positions[keep], numbers=frame.numbers[keep], cell=frame.cell, pbc=frame.pbc,
                   source="broken.extxyz#4")
    with pytest.raises(ValueError, match=r"broken.extxyz#4: O atom 3 has 1 H atoms") as info:
        water_molecules(broken)
    assert "\n" not in str(info.value)
