"""Potential and compute beyond the battery (tests/models/battery.py): TorchScript equals eager, the force-centric
contract, training through forces, the vector head, species mapping and configs."""

import numpy as np
import pytest
import torch

from maskpot.models import ModelConfig, build_potential, species_indices
from maskpot.models.compute import energy_forces
from maskpot.models.heads import VectorHead
from tests.models import battery


@pytest.mark.parametrize("backbone", battery.BACKBONES)
@pytest.mark.parametrize("dtype", battery.DTYPES)
def test_torchscript_equals_eager(backbone, dtype):
    model = battery.make_model(backbone, dtype)
    pot = model.potential
    pos, species, ei, shifts, _, _ = battery.graph(model, [battery.periodic_box()])
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


def test_force_centric_outputs():
    """GNS: forces from its vector head, energy and virial exactly zero."""
    model = battery.make_model("gns", "float64")
    out = battery.one(model, battery.periodic_box())
    assert float(out.energy) == 0.0 and not bool(out.virial.any()) and float(out.forces.abs().max()) > 1e-6


@pytest.mark.parametrize("backbone", battery.BACKBONES)
def test_create_graph_trains_on_forces(backbone):
    model = battery.make_model(backbone, "float64")
    _, f, _ = energy_forces(model.potential, *battery.graph(model, [battery.cluster()]), True)
    (f**2).sum().backward()
    grads = [p.grad for p in model.potential.backbone.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().max()) > 0 for g in grads)


def test_vector_head_and_species_mapping():
    model = battery.make_model("painn", "float64")
    pot = model.potential
    pos, species, ei, shifts, _, _ = battery.graph(model, [battery.cluster()])
    _, v = pot.backbone(species, ei, pos[ei[1]] - pos[ei[0]] + shifts, torch.ones(pos.shape[0], dtype=pos.dtype))
    out = VectorHead(16).double()(v)
    assert out.shape == (pos.shape[0], 3)
    assert pot.z_to_species_index.dtype == torch.int64 and pot.z_to_species_index[8] == 1 and pot.z_to_species_index[6] == -1
    np.testing.assert_array_equal(species_indices([8, 1, 1], [1, 8]), [1, 0, 0])
    with pytest.raises(ValueError, match="unknown element C .atomic number 6. at atom 2"):
        species_indices([8, 1, 6], [1, 8])
    scripted = torch.jit.script(pot)
    assert torch.equal(scripted.species_index_of(torch.tensor([1, 8])), torch.tensor([0, 1]))
    with pytest.raises(Exception, match="atomic number 6 at atom 1"):
        scripted.species_index_of(torch.tensor([1, 6]))
    with pytest.raises(ValueError, match="unknown backbone"):
        build_potential(ModelConfig(backbone="schnet"))
    assert ModelConfig.from_dict(ModelConfig(backbone="egnn").to_dict()) == ModelConfig(backbone="egnn")
