"""benchmarks/accuracy_md.py's analysis: g(r) normalisation and the count of dissociated waters (the NVT itself
runs in tests/benchmarks/test_benchmarks_quick.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from ase.build import molecule

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy_md import dissociated, oo_contacts, rdf  # noqa: E402


def test_rdf_of_an_ideal_gas_is_one_and_of_a_lattice_peaks_at_its_spacing():
    rng = np.random.default_rng(0)
    cell = np.eye(3) * 10.0
    numbers = np.array([8] * 150 + [1] * 150)
    frames = [rng.uniform(0.0, 10.0, size=(300, 3)) for _ in range(20)]
    for pair in ((8, 8), (8, 1)):
        r, g = rdf(frames, numbers, cell, pair, rmax=5.0, nbins=25)
        assert abs(np.mean(g[r > 1.0]) - 1.0) < 0.05, pair  # uncorrelated points: g = 1 (within noise)
    grid = np.stack(np.meshgrid(*[np.arange(4) * 2.5] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    r, g = rdf([grid], np.full(len(grid), 8), cell, (8, 8), rmax=5.0, nbins=45)  # bins 1/9 A wide
    assert np.all(g[r < 2.4] == 0.0) and abs(r[np.flatnonzero(g)[0]] - 2.5) < 1.0 / 18  # first shell at 2.5 A


def water_box(spacing: float = 4.0, n: int = 3):
    """n^3 intact waters on a cubic grid, wrapped into the box so that a H of each molecule on the box's faces
    lies across the boundary from its O."""
    h2o = molecule("H2O")
    positions = np.concatenate([h2o.positions + spacing * np.array(ijk) for ijk in np.ndindex(n, n, n)])
    numbers = np.tile(h2o.numbers, n ** 3)
    cell = np.eye(3) * spacing * n
    return (positions + np.array([0.2, 0.3, 0.3])) % (spacing * n), numbers, cell


def test_dissociated_counts_broken_waters_under_the_minimum_image():
    positions, numbers, cell = water_box()
    assert dissociated(positions, numbers, cell) == 0  # wrapped molecules are intact under the minimum image
    o, h = 0, 1  # ase's H2O: O first
    stretched = positions.copy()
    bond = positions[h] - positions[o]
    bond -= cell[0, 0] * np.round(bond / cell[0, 0])
    stretched[h] = positions[o] + bond * (1.5 / np.linalg.norm(bond))  # O-H 1.5 A > 1.3 A, still nearest its O
    assert dissociated(stretched, numbers, cell) == 1


def test_oo_contacts_find_overlapping_molecules_that_are_still_intact():
    positions, numbers, cell = water_box()
    oxygens = np.flatnonzero(numbers == 8)
    a, b = oxygens[0], oxygens[1]  # neighbours on the grid, 4 A apart
    overlapped = positions.copy()
    step = positions[b] - positions[a]
    step -= cell[0, 0] * np.round(step / cell[0, 0])
    overlapped[b:b + 3] -= step * (1.0 - 1.5 / np.linalg.norm(step))  # move molecule b whole: O-O 1.5 A
    traj = np.stack([positions, positions, overlapped, overlapped])
    found = oo_contacts(traj, numbers, cell, ps_per_frame=0.1)
    assert abs(found["oo_min"] - 1.5) < 1e-9 and found["oo_close_at_end"] == 1
    assert abs(found["oo_first_close_ps"] - 0.2) < 1e-12
    assert dissociated(overlapped, numbers, cell) == 0  # what the dissociation count alone would miss
    calm = oo_contacts(traj[:2], numbers, cell, ps_per_frame=0.1)
    assert abs(calm["oo_min"] - 4.0) < 1e-9 and calm["oo_close_at_end"] == 0 and calm["oo_first_close_ps"] is None
