"""Backbones + Potential + compute: symmetry, finite differences, virial, cutoff continuity, TorchScript."""

import numpy as np
import pytest
import torch

from maskpot.models import ModelConfig, build_potential, species_indices
from maskpot.models.compute import energy_forces
from maskpot.models.heads import VectorHead
from maskpot.models.neighbors import neighbor_pairs_open
from tests.models.water import periodic_graph, random_rotation, water_positions, water_species

BACKBONES = ["painn", "egnn", "gns"]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
CUTOFF = 4.0


def small_potential(backbone: str, dtype: str = "float64", seed: int = 0, shift: bool = True):
    torch.manual_seed(seed)
    pot = build_potential(ModelConfig(backbone=backbone, hidden=16, layers=2, num_rbf=8, cutoff=CUTOFF, dtype=dtype,
                                      avg_neighbors=8.0))
    with torch.no_grad():  # non-trivial normalisation so the buffers are exercised
        if shift:  # large constant energies would swamp finite differences with round-off
            pot.energy_shift.copy_(torch.tensor([-13.6, -432.0]))
        pot.energy_scale.fill_(1.7)
    return pot


def one_graph(pot, pos, species, edge_index, shifts, create_graph=False):
    batch = torch.zeros(pos.shape[0], dtype=torch.int64)
    e, f, w = energy_forces(pot, pos, species, edge_index, shifts, batch, 1, create_graph)
    return e[0], f, w[0]


def cluster(dtype):
    pos = torch.tensor(water_positions(2, 6.0, seed=1), dtype=dtype)
    return pos, water_species(8)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_rotation_translation_permutation(backbone, dtype):
    pot = small_potential(backbone, dtype)
    pos, species = cluster(DTYPES[dtype])
    ei = neighbor_pairs_open(pos, CUTOFF)
    e0, f0, _ = one_graph(pot, pos, species, ei, torch.zeros(ei.shape[1], 3, dtype=pos.dtype))
    _, v0 = pot.backbone(species, ei, pos[ei[1]] - pos[ei[0]], None)

    rot = random_rotation(7, pos.dtype)
    perm = torch.randperm(pos.shape[0], generator=torch.Generator().manual_seed(2))
    pos2 = (pos @ rot.T + torch.tensor([3.0, -1.0, 20.0], dtype=pos.dtype))[perm]
    species2 = species[perm]
    ei2 = neighbor_pairs_open(pos2, CUTOFF)
    e2, f2, _ = one_graph(pot, pos2, species2, ei2, torch.zeros(ei2.shape[1], 3, dtype=pos.dtype))
    _, v2 = pot.backbone(species2, ei2, pos2[ei2[1]] - pos2[ei2[0]], None)

    rtol = 1e-5 if dtype == "float64" else 2e-3
    fscale = float(f0.abs().max())
    assert fscale > 1e-6
    torch.testing.assert_close(e2, e0, rtol=rtol, atol=rtol * float(e0.abs()))
    torch.testing.assert_close(f2, (f0 @ rot.T)[perm], rtol=rtol, atol=rtol * fscale)
    if v0.numel():  # EGNN has no vector features (its displacements stay inside the backbone)
        vscale = float(v0.detach().abs().max())
        torch.testing.assert_close(v2, torch.einsum("ab,nbf->naf", rot, v0)[perm], rtol=rtol, atol=rtol * vscale)


def periodic_box(dtype=torch.float64):
    """8 water-like molecules in a 6.2 A box (cutoff 4 > half the box: several images per pair)."""
    box = 6.2
    pos = torch.tensor(water_positions(2, box, seed=4), dtype=dtype)
    cell = torch.tensor([[box, 0.0, 0.0], [0.4, box, 0.0], [-0.3, 0.2, box]], dtype=dtype)
    return pos, cell, water_species(8)


@pytest.mark.parametrize("backbone", ["painn", "egnn"])
def test_forces_are_minus_energy_gradient(backbone):
    pot = small_potential(backbone, shift=False)
    pos, cell, species = periodic_box()
    ei, shifts = periodic_graph(pos, cell, CUTOFF)
    _, forces, _ = one_graph(pot, pos, species, ei, shifts)
    h = 1e-5
    fd = torch.zeros_like(pos)
    for a in range(pos.shape[0]):
        for c in range(3):
            plus, minus = pos.clone(), pos.clone()
            plus[a, c] += h
            minus[a, c] -= h
            ep = one_graph(pot, plus, species, ei, shifts)[0]
            em = one_graph(pot, minus, species, ei, shifts)[0]
            fd[a, c] = -(ep - em) / (2 * h)
    scale = float(forces.abs().max())
    assert scale > 1e-4
    torch.testing.assert_close(forces, fd, rtol=1e-6, atol=1e-6 * scale)
    assert float(forces.sum(0).abs().max()) < 1e-10 * scale * pos.shape[0]  # Newton's third law


@pytest.mark.parametrize("backbone", ["painn", "egnn"])
def test_virial_is_minus_strain_derivative(backbone):
    """W_ab = -dE/d eps_ab under x -> x (I + eps), cell -> cell (I + eps)."""
    pot = small_potential(backbone, shift=False)
    pos, cell, species = periodic_box()
    ei, shifts = periodic_graph(pos, cell, CUTOFF)
    int_shifts = torch.linalg.solve(cell.T, shifts.T).T.round()
    _, _, virial = one_graph(pot, pos, species, ei, shifts)

    def energy(eps):
        d = torch.eye(3, dtype=pos.dtype) + eps
        return one_graph(pot, pos @ d, species, ei, int_shifts @ (cell @ d))[0]

    h = 1e-5
    fd = torch.zeros(3, 3, dtype=pos.dtype)
    for a in range(3):
        for b in range(3):
            eps = torch.zeros(3, 3, dtype=pos.dtype)
            eps[a, b] = h
            fd[a, b] = -(energy(eps) - energy(-eps)) / (2 * h)
    scale = float(virial.abs().max())
    assert scale > 1e-4
    torch.testing.assert_close(virial, fd, rtol=1e-6, atol=1e-6 * scale)
    torch.testing.assert_close(virial, virial.T, rtol=1e-8, atol=1e-10 * scale)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_continuous_at_cutoff(backbone):
    """A dimer just inside the cutoff has the energy and forces of two isolated atoms."""
    pot = small_potential(backbone)
    species = torch.tensor([1, 0])

    def dimer(r):
        pos = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=torch.float64)
        ei = neighbor_pairs_open(pos, CUTOFF)
        return ei.shape[1], one_graph(pot, pos, species, ei, torch.zeros(ei.shape[1], 3, dtype=pos.dtype))

    n_in, (e_in, f_in, _) = dimer(CUTOFF - 1e-4)
    n_out, (e_out, f_out, _) = dimer(CUTOFF + 1e-4)
    n_mid, (e_mid, f_mid, _) = dimer(CUTOFF * 0.8)
    assert (n_in, n_out, n_mid) == (2, 0, 2)
    # the dimer interacts in the middle but not at the cutoff
    changed = float((e_mid - e_out).abs()) + float((f_mid - f_out).abs().max())
    assert changed > 1e-4
    assert float((e_in - e_out).abs()) < 1e-9 * max(1.0, changed)
    assert float((f_in - f_out).abs().max()) < 1e-9 * max(1.0, changed)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_torchscript_equals_eager(backbone, dtype):
    pot = small_potential(backbone, dtype)
    pos, cell, species = periodic_box(DTYPES[dtype])
    ei, shifts = periodic_graph(pos, cell, CUTOFF)
    mask = (torch.arange(pos.shape[0]) % 5 == 0).to(pos.dtype)

    class Wrapper(torch.nn.Module):
        def __init__(self, potential):
            super().__init__()
            self.potential = potential

        def forward(self, pos, species, ei, shifts, mask):
            batch = torch.zeros(pos.shape[0], dtype=torch.int64)
            return self.potential.energy_forces(pos, species, ei, shifts, batch, 1, False, mask)

    scripted = torch.jit.script(Wrapper(pot))
    eager = Wrapper(pot)(pos, species, ei, shifts, mask)
    ts = scripted(pos, species, ei, shifts, mask)
    for a, b in zip(eager, ts):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    ne1, nv1 = pot(species, ei, pos[ei[1]] - pos[ei[0]] + shifts, mask)
    ne2, nv2 = torch.jit.script(pot)(species, ei, pos[ei[1]] - pos[ei[0]] + shifts, mask)
    torch.testing.assert_close(ne1, ne2)
    torch.testing.assert_close(nv1, nv2)
    # the mask embedding changes the output
    no_mask = Wrapper(pot)(pos, species, ei, shifts, None)
    assert float((no_mask[1] - eager[1]).abs().max()) > 1e-6


def test_gns_outputs_and_translation_invariance():
    pot = small_potential("gns")
    pos, cell, species = periodic_box()
    ei, shifts = periodic_graph(pos, cell, CUTOFF)
    e, f, w = one_graph(pot, pos, species, ei, shifts)
    assert float(e) == 0.0 and not bool(w.any()) and float(f.abs().max()) > 1e-6
    moved = pos + torch.tensor([1.3, -7.1, 2.9], dtype=pos.dtype)  # some atoms leave the cell: wrapped by the search
    ei2, shifts2 = periodic_graph(moved, cell, CUTOFF)
    _, f2, _ = one_graph(pot, moved, species, ei2, shifts2)
    torch.testing.assert_close(f2, f, rtol=1e-10, atol=1e-12)


def test_batch_of_two_graphs_equals_separate():
    pot = small_potential("painn")
    pos, cell, species = periodic_box()
    ei, shifts = periodic_graph(pos, cell, CUTOFF)
    pos_b, species_b = cluster(torch.float64)
    ei_b = neighbor_pairs_open(pos_b, CUTOFF)
    e_a, f_a, w_a = one_graph(pot, pos, species, ei, shifts)
    e_b, f_b, w_b = one_graph(pot, pos_b, species_b, ei_b, torch.zeros(ei_b.shape[1], 3, dtype=pos.dtype))
    n = pos.shape[0]
    batch = torch.cat([torch.zeros(n, dtype=torch.int64), torch.ones(pos_b.shape[0], dtype=torch.int64)])
    e, f, w = energy_forces(pot, torch.cat([pos, pos_b]), torch.cat([species, species_b]), torch.cat([ei, ei_b + n], 1),
                            torch.cat([shifts, torch.zeros(ei_b.shape[1], 3, dtype=pos.dtype)]), batch, 2, False)
    torch.testing.assert_close(e, torch.stack([e_a, e_b]))
    torch.testing.assert_close(f, torch.cat([f_a, f_b]))
    torch.testing.assert_close(w, torch.stack([w_a, w_b]))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_create_graph_trains_on_forces(backbone):
    pot = small_potential(backbone)
    pos, species = cluster(torch.float64)
    ei = neighbor_pairs_open(pos, CUTOFF)
    _, f, _ = one_graph(pot, pos, species, ei, torch.zeros(ei.shape[1], 3, dtype=pos.dtype), create_graph=True)
    (f**2).sum().backward()
    grads = [p.grad for p in pot.backbone.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().max()) > 0 for g in grads)


def test_vector_head_and_species_mapping():
    pot = small_potential("painn")
    pos, species = cluster(torch.float64)
    ei = neighbor_pairs_open(pos, CUTOFF)
    _, v = pot.backbone(species, ei, pos[ei[1]] - pos[ei[0]], torch.ones(pos.shape[0], dtype=pos.dtype))
    out = VectorHead(16).double()(v)
    assert out.shape == (pos.shape[0], 3)
    assert pot.z_to_species.dtype == torch.int64 and pot.z_to_species[8] == 1 and pot.z_to_species[6] == -1
    np.testing.assert_array_equal(species_indices([8, 1, 1], [1, 8]), [1, 0, 0])
    with pytest.raises(ValueError, match="unknown element C .atomic number 6. at atom 2"):
        species_indices([8, 1, 6], [1, 8])
    scripted = torch.jit.script(pot)
    assert torch.equal(scripted.species_from_numbers(torch.tensor([1, 8])), torch.tensor([0, 1]))
    with pytest.raises(Exception, match="atomic number 6 at atom 1"):
        scripted.species_from_numbers(torch.tensor([1, 6]))
    with pytest.raises(ValueError, match="unknown backbone"):
        build_potential(ModelConfig(backbone="schnet"))
    assert ModelConfig.from_dict(ModelConfig(backbone="egnn").to_dict()) == ModelConfig(backbone="egnn")
