"""maskpot::neighbor_pairs (maskpot/kernels/csrc/neighbor_pairs.cpp) against the pure-torch search it replaces
(maskpot.models.neighbors.neighbor_pairs): the same edge set, as (i, j, shift) triples, on water boxes, triclinic and
short cells, partial and no periodicity, 0 and 1 atoms, in float32 and float64; its order (sorted, or in pairs)
and refusals; and the exports that use it (ASE and OpenMM with fused kernels) against reference exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskpot.export.metadata import read_metadata
from maskpot.kernels.neighbors import FusedNeighborSearch, use_fused_neighbors
from maskpot.models.neighbors import NeighborSearch, neighbor_pairs
from tests.conftest import water_atoms_box

DTYPES = (torch.float32, torch.float64)
TRICLINIC = [[6.0, 0.0, 0.0], [2.1, 5.5, 0.0], [-1.4, 1.3, 5.2]]


def edge_set(edge_index, shifts) -> set:
    assert edge_index.dtype == torch.int64 and edge_index.shape == (2, shifts.shape[0])
    assert torch.equal(shifts, torch.round(shifts)), "shifts must be integer-valued"
    return set(zip(edge_index[0].tolist(), edge_index[1].tolist(), map(tuple, shifts.long().tolist())))


def compare(positions, cell, pbc, cutoff, dtype, min_edges=1):
    """The operator's edges against the torch version's; returns their number."""
    pos = torch.as_tensor(np.asarray(positions), dtype=dtype).reshape(-1, 3)
    box = None if cell is None else torch.as_tensor(np.asarray(cell), dtype=dtype)
    periodic = torch.tensor(pbc, dtype=torch.bool)
    ref = neighbor_pairs(pos, box, periodic, cutoff)
    out = torch.ops.maskpot.neighbor_pairs(pos, box, periodic, cutoff)
    assert out[1].dtype == dtype
    got, want = edge_set(*out), edge_set(*ref)
    assert len(got) == out[0].shape[1], "an edge appears twice"
    assert got == want, f"only op: {sorted(got - want)[:5]}, only torch: {sorted(want - got)[:5]}"
    assert len(got) >= min_edges
    keys = [(i, j, s) for i, j, s in zip(out[0][0].tolist(), out[0][1].tolist(), map(tuple, out[1].long().tolist()))]
    assert keys == sorted(keys), "edges must be sorted by (i, j, shift)"
    check_paired(torch.ops.maskpot.neighbor_pairs(pos, box, periodic, cutoff, True), got)
    return len(got)


def check_paired(out, want: set) -> None:
    """The paired layout: the same edges, edge 2k + 1 the reverse (j, i, -shift) of edge 2k, the first edges sorted
    by (i, j, shift) with (j, shift) after (i, 0)."""
    edge_index, shifts = out
    assert edge_set(edge_index, shifts) == want and edge_index.shape[1] == len(want)
    i, j, s = edge_index[0].tolist(), edge_index[1].tolist(), shifts.long().tolist()
    firsts = [(i[e], j[e], tuple(s[e])) for e in range(0, len(i), 2)]
    assert firsts == sorted(firsts), "pairs must be sorted by their first edge"
    for e in range(0, len(i), 2):
        assert (j[e], tuple(s[e])) > (i[e], (0, 0, 0)), f"edge {e} is not its pair's first"
        assert (i[e + 1], j[e + 1], s[e + 1]) == (j[e], i[e], [-x for x in s[e]]), f"edge {e + 1} is not {e}'s reverse"


@pytest.mark.parametrize("dtype", DTYPES)
def test_water_boxes(dtype):
    for waters, box, seed in ((64, 12.44, 0), (27, 9.33, 1)):
        atoms = water_atoms_box(waters, box, seed)
        for cutoff in (4.0, 5.0):
            n = compare(atoms.positions, atoms.cell, (True, True, True), cutoff, dtype, min_edges=20 * len(atoms))
        # unwrapped positions (atoms several cells away, on both sides) give the same edges with other shifts
        rng = np.random.default_rng(seed)
        unwrapped = atoms.positions + rng.integers(-3, 4, (len(atoms), 3)) * box
        assert compare(unwrapped, atoms.cell, (True, True, True), cutoff, dtype) == n


@pytest.mark.parametrize("dtype", DTYPES)
def test_triclinic_and_short_cells(dtype):
    rng = np.random.default_rng(4)
    frac = rng.random((9, 3))
    positions = frac @ np.array(TRICLINIC)
    compare(positions, TRICLINIC, (True, True, True), 3.5, dtype, min_edges=9)
    # cutoffs longer than the cell: several images of one neighbour, and of the atom itself
    compare(positions, TRICLINIC, (True, True, True), 9.0, dtype, min_edges=9 * 9 * 10)
    compare([[0.3, 0.2, 0.1], [1.2, 1.1, 0.9]], np.eye(3) * 2.5, (True, True, True), 6.0, dtype, min_edges=200)
    compare([[0.3, 0.2, 0.1]], TRICLINIC, (True, True, True), 7.0, dtype, min_edges=6)  # one atom: its images


@pytest.mark.parametrize("dtype", DTYPES)
def test_partial_and_no_periodicity(dtype):
    atoms = water_atoms_box(27, 9.33, 2)
    for pbc in ((True, True, False), (False, True, False)):
        compare(atoms.positions, atoms.cell, pbc, 4.0, dtype, min_edges=10 * len(atoms))
        compare(atoms.positions[:5], TRICLINIC, pbc, 8.0, dtype, min_edges=20)
    compare(atoms.positions, atoms.cell, (False, False, False), 4.0, dtype, min_edges=10 * len(atoms))
    compare(atoms.positions, None, (False, False, False), 4.0, dtype, min_edges=10 * len(atoms))
    compare(atoms.positions * 40.0, None, (False, False, False), 4.0, dtype, min_edges=0)  # a sparse gas
    # two droplets far apart, and a line of atoms: bins wider than the reach (fewer bins than the bounding box needs)
    far = np.concatenate([atoms.positions, atoms.positions + [3000.0, -2000.0, 5000.0]])
    compare(far, None, (False, False, False), 4.0, dtype, min_edges=20 * len(atoms))
    line = np.outer(np.arange(40) * 2.5, [1.0, 0.0, 0.0]) + [0.0, 0.0, 1e4 * (dtype == torch.float64)]
    assert compare(line, None, (False, False, False), 5.5, dtype) == 2 * (39 + 38)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_and_one_atoms_and_the_exact_cutoff(dtype):
    for pbc, cell in (((True, True, True), TRICLINIC), ((False, False, False), None)):
        assert compare(np.zeros((0, 3)), cell, pbc, 4.0, dtype, min_edges=0) == 0
    assert compare([[1.0, 2.0, 3.0]], None, (False, False, False), 4.0, dtype, min_edges=0) == 0
    # a pair exactly at the cutoff is out (the test is < cutoff), one just inside is in
    assert compare([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]], None, (False, False, False), 4.0, dtype, min_edges=0) == 0
    assert compare([[0.0, 0.0, 0.0], [3.999, 0.0, 0.0]], None, (False, False, False), 4.0, dtype) == 2


def test_refusals():
    pos = torch.zeros((2, 3), dtype=torch.float64)
    pos[1, 0] = 1.0
    op = torch.ops.maskpot.neighbor_pairs
    with pytest.raises(ValueError, match="periodic boundaries were requested but no cell was given"):
        op(pos, None, torch.tensor([True, False, False]), 4.0)
    with pytest.raises(ValueError, match="the cell is singular"):
        op(pos, torch.zeros((3, 3), dtype=torch.float64), torch.ones(3, dtype=torch.bool), 4.0)
    bad = pos.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="position of atom 1 is not finite"):
        op(bad, None, torch.zeros(3, dtype=torch.bool), 4.0)
    with pytest.raises(ValueError, match="positions must be float32 or float64"):
        op(pos.long(), None, torch.zeros(3, dtype=torch.bool), 4.0)


def test_threads_give_the_same_edges():
    atoms = water_atoms_box(343, 21.77, 3)  # 1029 atoms: enough for 3 threads
    args = (torch.tensor(atoms.positions), torch.tensor(np.asarray(atoms.cell)), torch.ones(3, dtype=torch.bool), 5.0)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append(torch.ops.maskpot.neighbor_pairs(*args))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_swap_in_a_scripted_module():
    """use_fused_neighbors swaps every NeighborSearch; the scripted fused module gives the torch search's edges."""
    holder = torch.nn.Module()
    holder.search = NeighborSearch()
    assert use_fused_neighbors(holder) == 1 and isinstance(holder.search, FusedNeighborSearch)
    scripted = torch.jit.script(holder.search)
    atoms = water_atoms_box(27, 9.33, 5)
    f32 = dict(dtype=torch.float32)
    args = (torch.tensor(atoms.positions, **f32), torch.tensor(np.asarray(atoms.cell), **f32),
            torch.ones(3, dtype=torch.bool), 4.0)
    assert edge_set(*scripted(*args)) == edge_set(*neighbor_pairs(*args))
    check_paired(scripted(*args), edge_set(*neighbor_pairs(*args)))  # exports get the paired layout


# ---- exports -----------------------------------------------------------------------------------------------------

def test_fused_exports_call_the_operator_and_reference_exports_do_not(export_factory):
    for target in ("ase", "openmm"):
        fused = torch.jit.load(str(export_factory(target, "egnn")))  # no PaiNN: fused means the neighbour search
        assert read_metadata(export_factory(target, "egnn"))["kernels"] == "fused"
        assert "maskpot.neighbor_pairs" in fused.core.neighbors.code
        ref = torch.jit.load(str(export_factory(target, "egnn", kernels="reference")))
        assert "ops.maskpot" not in ref.core.neighbors.code
    # LAMMPS gives the edges: a fused LAMMPS export keeps the (unused) torch search
    assert "ops.maskpot" not in torch.jit.load(str(export_factory("lammps", "painn"))).core.neighbors.code


@pytest.mark.parametrize("backbone", ["egnn", "painn", "gns"])
def test_fused_ase_export_matches_reference_export(export_factory, backbone):
    """float64 exports, periodic and not: the neighbour operator changes the edge order only (GNS, force-centric,
    has no energy)."""
    from maskpot.ase import MaskpotCalculator

    for pbc in (True, False):
        results = []
        for k in ("reference", "fused"):
            atoms = water_atoms_box(27, 9.33, 6)
            atoms.pbc = pbc
            atoms.calc = MaskpotCalculator(export_factory("ase", backbone, "float64", kernels=k))
            energy = atoms.get_potential_energy() if "energy" in atoms.calc.implemented_properties else 0.0
            results.append((energy, atoms.get_forces()))
        (e_r, f_r), (e_f, f_f) = results
        assert np.abs(f_r).max() > 1e-5  # random weights: small but not zero
        assert abs(e_f - e_r) <= 1e-10 * abs(e_r)
        assert np.abs(f_f - f_r).max() <= 1e-10 * np.abs(f_r).max()
