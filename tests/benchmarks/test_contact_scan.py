"""benchmarks/contact_scan.py: the pushed geometry, the false-minimum finder, and flexible TIP3P as the repulsive
reference (the script end to end runs in tests/benchmarks/test_benchmarks_quick.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from ase.geometry import get_distances

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.contact_scan import as_waters, closest_pairs, first_false_minimum, pushed, scan  # noqa: E402
from maskpot.data.frame import Frame  # noqa: E402
from tests.benchmarks.test_accuracy_md import water_box  # noqa: E402


def grid_waters() -> Frame:
    """27 waters 4 A apart in a 12 A box, atoms ordered all O first, then all H (as DeePMD's files)."""
    positions, numbers, cell = water_box()
    order = np.concatenate([np.flatnonzero(numbers == 8), np.flatnonzero(numbers == 1)])
    return Frame(positions=positions[order], numbers=numbers[order], cell=cell, pbc=np.ones(3, dtype=bool))


def mic_distance(frame: Frame, positions, i: int, j: int) -> float:
    return float(get_distances(positions[i], positions[j], cell=frame.cell, pbc=frame.pbc)[1][0, 0])


def test_as_waters_orders_each_molecule_o_h_h():
    frame = as_waters(grid_waters())
    assert np.array_equal(frame.numbers, np.tile([8, 1, 1], 27))
    for m in range(27):
        for h in (3 * m + 1, 3 * m + 2):
            assert mic_distance(frame, frame.positions, 3 * m, h) < 1.1


def test_pushed_moves_one_molecule_rigidly_to_the_asked_o_o_distance_across_the_boundary():
    frame = as_waters(grid_waters())
    assert [round(d, 6) for _, _, d in closest_pairs(frame, 3)] == [4.0, 4.0, 4.0]
    a, b = 0, 18  # grid corners (0,0,0) and (2,0,0): 8 A apart directly, 4 A through the boundary
    assert abs(mic_distance(frame, frame.positions, 0, 3 * b) - 4.0) < 1e-9
    moved = pushed(frame, a, b, 2.5)
    assert abs(mic_distance(frame, moved, 0, 3 * b) - 2.5) < 1e-9
    shift = moved - frame.positions
    assert np.allclose(shift[3 * b:3 * b + 3], shift[3 * b]) and abs(np.linalg.norm(shift[3 * b]) - 1.5) < 1e-9
    untouched = np.ones(len(moved), dtype=bool)
    untouched[3 * b:3 * b + 3] = False
    assert np.array_equal(moved[untouched], frame.positions[untouched])


def test_first_false_minimum_finds_the_first_fall_and_ignores_walls_and_small_wiggles():
    d = [3.0, 2.8, 2.6, 2.4, 2.2, 2.0, 1.8, 1.6, 1.4]
    wall = [0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]
    assert first_false_minimum(d, wall, below=2.8) is None
    wiggle = [0.0, 0.1, 0.2, 0.15, 0.3, 0.6, 1.0, 2.0, 3.0]  # falls 0.05 eV < 0.1 eV
    assert first_false_minimum(d, wiggle, below=2.8) is None
    dip = [0.0, 0.1, 0.3, 0.5, 0.2, 0.1, 0.4, 1.0, 0.2]  # barrier 0.5 at 2.4, bottom 0.1 at 2.0, another fall later
    assert first_false_minimum(d, dip, below=2.8) == {"barrier_at": 2.4, "barrier": 0.5,
                                                      "minimum_at": 2.0, "minimum": 0.1}
    assert first_false_minimum(d, dip, below=2.1) == {"barrier_at": 1.6, "barrier": 1.0,
                                                      "minimum_at": 1.4, "minimum": 0.2}


def test_tip3p_is_a_wall_for_two_pushed_waters():
    """The classical reference the models are compared with repels steeply and never falls, for every pushed pair."""
    from maskpot.data.tip3p import tip3p_evaluator

    frame = as_waters(grid_waters())
    evaluate = tip3p_evaluator(frame)
    distances = [round(x, 2) for x in np.arange(3.6, 1.59, -0.1)]
    pairs = closest_pairs(frame, 2) + [(0, 18, 4.0)]
    for curve in scan(lambda p: evaluate(p)[0], frame, pairs, distances):
        assert first_false_minimum(distances, curve, below=3.6) is None
        assert np.all(np.diff(curve) > 0) and curve[distances.index(2.0)] > 3.0  # eV: a steep wall by 2 A


def test_a_dataset_without_an_md_model_is_a_row_saying_so(tmp_path):
    from benchmarks.contact_scan import main

    assert main(["--out", str(tmp_path), "--data", "tip3p"]) == 0
    row = next(line for line in (tmp_path / "contact_scan.md").read_text().splitlines() if line.startswith("| tip3p |"))
    assert "no MD model; run benchmarks/accuracy.py first" in row
