"""The layer-wise interface of the LAMMPS export (edge_features, initial_state, layer_step, node_outputs), driven the
way pair_maskpot's `ghosts exchange` drives it, in Python: one rank whose ghosts are the periodic images within
the cutoff. Node states of ghosts are copied from their owners between layers, gradients of ghost states are
summed into their owners layer by layer, ghost forces go to their owners. The result must equal the ASE export
of the same checkpoint, which evaluates the whole periodic graph in one call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list

from maskpot.ase import MaskpotCalculator


def image_graph(atoms, cutoff):
    """Local atoms 0..n-1, then one ghost per periodic image within the cutoff; edges local i <- any j."""
    i, j, shifts = neighbor_list("ijS", atoms, cutoff)
    n = len(atoms)
    images = sorted({(int(b), tuple(int(x) for x in s)) for b, s in zip(j, shifts) if any(s)})
    node_of = {key: n + g for g, key in enumerate(images)}
    owner = np.concatenate([np.arange(n), np.array([b for b, _ in images], dtype=int)]).astype(np.int64)
    pos = np.concatenate([atoms.positions] + [atoms.positions[[b]] + np.array(s) @ atoms.cell for b, s in images])
    dst = np.array([node_of[(int(b), tuple(int(x) for x in s))] if any(s) else b for b, s in zip(j, shifts)])
    return torch.as_tensor(owner), torch.as_tensor(pos), torch.as_tensor(np.stack([i, dst]), dtype=torch.int64)


def exchange(module, atoms):
    """Energy (eV) and forces (eV/A) as pair_maskpot_exchange.cpp computes them, on one rank."""
    owner, pos, edge_index = image_graph(atoms, module.cutoff)
    n = len(atoms)
    numbers = torch.as_tensor(atoms.numbers, dtype=torch.int64)[owner]
    edge_vec = (pos[edge_index[1]] - pos[edge_index[0]]).requires_grad_(True)
    feat = module.edge_features(edge_vec)
    feat_leaf = feat.detach().requires_grad_(True)
    node, edge = module.initial_state(numbers, feat_leaf)
    node_in, node_out = [], []
    for k in range(module.n_layers):
        node_in.append(node.detach().requires_grad_(k > 0))
        out, edge = module.layer_step(k, node_in[k], edge, feat_leaf, edge_index, n)
        node_out.append(out)
        node = out.detach()[owner]  # forward communication: every ghost row from its owner
    last = node_out[-1].detach().requires_grad_(True)
    node_energy, _ = module.node_outputs(last, edge, feat_leaf, edge_index, numbers, edge_vec)
    energy = node_energy.sum()
    # the priors' gradient comes straight to the edge vectors, the network's through the edge features
    g_node, g_feat, g_priors = torch.autograd.grad(energy, [last, feat_leaf, edge_vec], allow_unused=True)
    g_feat = torch.zeros_like(feat_leaf) if g_feat is None else g_feat
    for k in reversed(range(module.n_layers)):
        inputs = [feat_leaf] + ([node_in[k]] if k > 0 else [])
        grads = torch.autograd.grad([node_out[k]], inputs, [g_node], allow_unused=True)
        g_feat = g_feat + grads[0]
        if k > 0:  # reverse communication: ghost rows summed into their owners
            g_node = torch.zeros((n, grads[1].shape[1]), dtype=grads[1].dtype).index_add(0, owner, grads[1])
    (g_vec,) = torch.autograd.grad([feat], [edge_vec], [g_feat])
    if g_priors is not None:
        g_vec = g_vec + g_priors
    forces = torch.zeros_like(pos).index_add(0, edge_index[0], g_vec).index_add(0, edge_index[1], -g_vec)
    forces = torch.zeros((n, 3), dtype=forces.dtype).index_add(0, owner, forces)
    return float(energy.detach()), forces.detach().numpy()


@pytest.mark.parametrize("backbone", ["painn", "egnn", "painn-rep"])
def test_layer_by_layer_with_image_ghosts_equals_whole_graph(backbone, water_atoms, export_factory):
    """The repulsion of painn-rep comes with node_outputs, its gradient with node_outputs' edge vectors."""
    module = torch.jit.load(str(export_factory("lammps", backbone, "float64")))
    assert module.n_layers == 2 and module.state_width == {"painn": 4 * 16, "egnn": 16 + 3}[backbone[:5]]
    energy, forces = exchange(module, water_atoms)
    atoms = water_atoms.copy()
    atoms.calc = MaskpotCalculator(export_factory("ase", backbone, "float64"))
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    f_ref = atoms.get_forces()
    assert np.abs(forces - f_ref).max() <= 1e-10 * np.abs(f_ref).max()


def test_force_centric_readout_gives_forces_of_local_atoms(water_atoms, export_factory):
    """GNS: node states and edge states after the layers give the direct forces of the local atoms."""
    module = torch.jit.load(str(export_factory("lammps", "gns", "float64")))
    owner, pos, edge_index = image_graph(water_atoms, module.cutoff)
    n = len(water_atoms)
    numbers = torch.as_tensor(water_atoms.numbers, dtype=torch.int64)[owner]
    edge_vec = pos[edge_index[1]] - pos[edge_index[0]]
    feat = module.edge_features(edge_vec)
    node, edge = module.initial_state(numbers, feat)
    for k in range(module.n_layers):
        out, edge = module.layer_step(k, node, edge, feat, edge_index, n)
        node = out[owner]
    _, forces = module.node_outputs(out, edge, feat, edge_index, numbers, edge_vec)
    atoms = water_atoms.copy()
    atoms.calc = MaskpotCalculator(export_factory("ase", "gns", "float64"))
    f_ref = atoms.get_forces()
    assert np.abs(forces.detach().numpy() - f_ref).max() <= 1e-10 * np.abs(f_ref).max()
