"""maskpot.models.repulsion: the data-derived table, zero on the training frames, the switched ZBL against LAMMPS'
own pair_style zbl, forces as derivatives of the energy, pair accounting in a Potential, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.geometry import get_distances

from maskpot.models import ModelConfig, build_potential
from maskpot.models.repulsion import ZBLRepulsion, closest_pair_distances, repulsion_table


def brute_force_closest(frames) -> dict[str, float]:
    best: dict[str, float] = {}
    for f in frames:
        d = get_distances(f.positions, f.positions, cell=f.cell, pbc=f.pbc)[1] + np.eye(len(f)) * 1e9
        for a, b in ((1, 1), (1, 8), (8, 8)):
            key = f"{a}-{b}"
            best[key] = min(best.get(key, np.inf), float(d[np.ix_(f.numbers == a, f.numbers == b)].min()))
    return best


def water_potential(table, backbone: str = "painn"):
    torch.manual_seed(0)
    config = ModelConfig(backbone=backbone, species=[1, 8], hidden=8, layers=2, num_rbf=4, dtype="float64",
                         avg_neighbors=32.0, repulsion=table)
    return build_potential(config)


def energy_forces(potential, frame):
    from maskpot.data.neighbors import neighbor_list

    i, j, shifts = neighbor_list(frame.positions, frame.cell, frame.pbc, potential.cutoff)
    pos = torch.tensor(frame.positions, requires_grad=True)
    species = torch.tensor([{1: 0, 8: 1}[int(z)] for z in frame.numbers])
    edge_index = torch.tensor(np.stack([i, j]))
    vec = pos[edge_index[1]] - pos[edge_index[0]] + torch.tensor(shifts @ frame.cell, dtype=torch.float64)
    energy = potential(species, edge_index, vec)[0].sum()
    (grad,) = torch.autograd.grad(energy, pos)
    return float(energy.detach()), -grad.numpy()


def test_table_is_the_closest_distance_per_pair_minus_the_margin(tip3p_water_frames):
    expected = brute_force_closest(tip3p_water_frames)
    assert closest_pair_distances(tip3p_water_frames, [1, 8], 4.0) == pytest.approx(expected, abs=1e-12)
    table = repulsion_table(tip3p_water_frames, [1, 8], 4.0)
    assert table == pytest.approx({k: v - 0.1 for k, v in expected.items()}, abs=1e-4)


def test_zero_on_the_frames_it_came_from_and_a_wall_closer_in(tip3p_water_frames):
    table = repulsion_table(tip3p_water_frames, [1, 8], 4.0)
    plain, guarded = water_potential(None), water_potential(table)
    for frame in tip3p_water_frames:
        e0, f0 = energy_forces(plain, frame)
        e1, f1 = energy_forces(guarded, frame)
        assert e1 == e0 and np.array_equal(f1, f0)  # exactly: no pair is closer than the table
    frame = tip3p_water_frames[0]
    moved = frame.positions.copy()
    step = frame.positions[3] - frame.positions[0]
    step -= frame.cell[0, 0] * np.round(step / frame.cell[0, 0])
    moved[3:6] -= step * (1.0 - 1.8 / np.linalg.norm(step))  # molecule 1 whole to O-O 1.8 A of molecule 0
    squeezed = type(frame)(moved, frame.numbers, frame.cell, frame.pbc)
    assert energy_forces(guarded, squeezed)[0] - energy_forces(plain, squeezed)[0] > 1.0  # eV: ZBL O-O 2.2 at 1.8 A


def test_forces_are_minus_the_gradient_across_the_switch():
    """Finite differences of a dimer's energy at distances inside, across and outside the switch."""
    rep = ZBLRepulsion([1, 8], {"8-8": 2.3, "1-8": 1.0}, 0.3).double()
    sp = torch.tensor([1, 1])
    for r0 in (1.5, 2.0, 2.05, 2.15, 2.29, 2.31):
        r = torch.tensor([r0], dtype=torch.float64, requires_grad=True)
        e = rep.pair_energy(sp[:1], sp[1:], r)
        (g,) = torch.autograd.grad(e.sum(), r)
        h = 1e-6
        fd = (rep.pair_energy(sp[:1], sp[1:], r.detach() + h) - rep.pair_energy(sp[:1], sp[1:], r.detach() - h)) / (2 * h)
        assert float(g) == pytest.approx(float(fd), rel=1e-6, abs=1e-9), r0
    r = torch.tensor([2.0 - 1e-9, 2.0, 2.3 - 1e-9, 2.3], dtype=torch.float64)
    e = rep.pair_energy(sp[:1].expand(4), sp[1:].expand(4), r)
    assert float(e[0]) == pytest.approx(float(e[1]), rel=1e-8)  # continuous where the switch starts
    assert float(e[2]) < 1e-20 and float(e[3]) == 0.0  # and where it ends


def test_switched_on_zbl_matches_lammps_pair_zbl():
    """Inside the switch the term is the ZBL universal potential: the force of LAMMPS' pair_style zbl on an O-O and
    an O-H dimer (below its own inner cutoff, where its switching adds only a constant) equals -dE/dr here."""
    from maskpot.lammps import import_lammps

    rep = ZBLRepulsion([1, 8], {"8-8": 3.0, "1-8": 3.0}, 0.3).double()
    for z2, r0 in ((8, 1.2), (8, 2.0), (1, 0.8), (1, 1.6)):
        lmp = import_lammps().lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        try:
            lmp.commands_string(f"""
                units metal
                atom_style atomic
                region box block -10 10 -10 10 -10 10
                create_box 2 box
                create_atoms 1 single 0 0 0
                create_atoms 2 single {r0} 0 0
                mass * 1.0
                pair_style zbl 2.5 2.9
                pair_coeff 1 1 8.0 8.0
                pair_coeff 1 2 8.0 {float(z2)}
                pair_coeff 2 2 {float(z2)} {float(z2)}
                run 0
            """)
            fx = np.array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)[1, 0]
        finally:
            lmp.close()
        r = torch.tensor([r0], dtype=torch.float64, requires_grad=True)
        e = rep.pair_energy(torch.tensor([1]), torch.tensor([1 if z2 == 8 else 0]), r)
        (g,) = torch.autograd.grad(e.sum(), r)
        assert fx == pytest.approx(-float(g), rel=1e-6), (z2, r0)


def test_each_pair_counted_once_in_a_potential(tip3p_water_frames):
    """Potential energy with the term minus without = the pair sum over all atom pairs closer than the table."""
    frame = tip3p_water_frames[1]
    table = {"1-1": 2.0, "1-8": 1.9, "8-8": 3.0}
    rep = ZBLRepulsion([1, 8], table, 0.3).double()
    d = get_distances(frame.positions, frame.positions, cell=frame.cell, pbc=frame.pbc)[1]
    a, b = np.triu_indices(len(frame), k=1)
    species = torch.tensor([{1: 0, 8: 1}[int(z)] for z in frame.numbers])
    expected = float(rep.pair_energy(species[a], species[b], torch.tensor(d[a, b])).sum())
    assert expected > 10.0  # eV: many pairs inside these distances
    difference = energy_forces(water_potential(table), frame)[0] - energy_forces(water_potential(None), frame)[0]
    assert difference == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("table, backbone, message", [
    ({"8-8": 2.3}, "gns", "energy-centric"),
    ({"6-8": 2.3}, "painn", "not a pair of the model's species"),
    ({"8-8": 0.2}, "painn", "must exceed the width"),
])
def test_bad_tables_are_refused(table, backbone, message):
    with pytest.raises(ValueError, match=message):
        water_potential(table, backbone)
