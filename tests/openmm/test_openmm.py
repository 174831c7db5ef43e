"""OpenMM: TorchForce from an export gives the ASE calculator's energy and forces, on every platform."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch  # noqa: F401  (import before openmm, see maskpot.openmm.force.ensure_torch_plugin)
import openmm
import openmm.unit as u

from maskpot.ase import MaskpotCalculator
from maskpot.data.frame import Frame
from maskpot.data.units import EV_TO_KJ_PER_MOL
from maskpot.openmm import create_force
from maskpot.openmm.system import system_from_frame, topology_from_frame

# TorchForce throughout (tests/conftest.py: skipped on the current stack only)
pytestmark = pytest.mark.openmm_torch

KJ_PER_EV_A = EV_TO_KJ_PER_MOL * 10  # eV/A -> kJ/mol/nm


def openmm_energy_forces(system, positions_nm, platform="CPU", box=None):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    if box is not None:
        ctx.setPeriodicBoxVectors(*box)
    ctx.setPositions(positions_nm)
    state = ctx.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer))


def reference(export_factory, atoms, backbone="painn", dtype="float64"):
    atoms = atoms.copy()
    atoms.calc = MaskpotCalculator(export_factory("ase", backbone, dtype))
    energy = atoms.get_potential_energy() * EV_TO_KJ_PER_MOL if backbone != "gns" else None  # GNS: forces only
    return energy, atoms.get_forces() * KJ_PER_EV_A


@pytest.mark.parametrize("platform", ["CPU", "Reference"])
@pytest.mark.parametrize("backbone", ["painn", "gns", "painn-rep"])
def test_openmm_equals_ase(platform, backbone, export_factory, water_atoms):
    atoms = water_atoms.copy()
    atoms.positions[::5] += atoms.cell[1]  # atoms outside the box
    frame = Frame.from_atoms(atoms)
    system, _, pos = system_from_frame(frame, str(export_factory("openmm", backbone)))
    energy, forces = openmm_energy_forces(system, pos, platform)
    e_ref, f_ref = reference(export_factory, atoms, backbone)
    if backbone != "gns":
        assert energy == pytest.approx(e_ref, rel=1e-6)
    np.testing.assert_allclose(forces, f_ref, rtol=1e-6, atol=1e-6 * np.abs(f_ref).max())


def test_float32_export_close_to_float64(checkpoint_factory, export_factory, water_atoms, tmp_path):
    from maskpot.export import export_checkpoint

    frame = Frame.from_atoms(water_atoms)
    f32 = export_checkpoint(checkpoint_factory("painn", "float64"), "openmm", tmp_path / "f32.pt", dtype="float32")
    assert torch.jit.load(str(f32)).dtype == "float32"
    e32, f32_forces = openmm_energy_forces(system_from_frame(frame, str(f32))[0], frame.positions / 10)
    e_ref, f_ref = reference(export_factory, water_atoms)
    assert e32 == pytest.approx(e_ref, rel=1e-4)
    np.testing.assert_allclose(f32_forces, f_ref, rtol=1e-4, atol=1e-4 * np.abs(f_ref).max())


def test_triclinic_box(export_factory, water_atoms):
    atoms = water_atoms.copy()
    atoms.set_cell(atoms.cell @ np.array([[1, 0, 0], [0.3, 1, 0], [0.2, -0.25, 1]]), scale_atoms=True)
    atoms.wrap()
    system, _, pos = system_from_frame(Frame.from_atoms(atoms), str(export_factory("openmm")))
    energy, forces = openmm_energy_forces(system, pos)
    e_ref, f_ref = reference(export_factory, atoms)
    assert energy == pytest.approx(e_ref, rel=1e-6)
    np.testing.assert_allclose(forces, f_ref, rtol=1e-6, atol=1e-6 * np.abs(f_ref).max())


def test_mlpotential_create_system_and_mixed(export_factory, water_atoms):
    from openmmml import MLPotential

    frame = Frame.from_atoms(water_atoms)
    top = topology_from_frame(frame)
    model = str(export_factory("openmm"))
    potential = MLPotential("maskpot", modelPath=model)
    system = potential.createSystem(top)
    energy, forces = openmm_energy_forces(system, frame.positions / 10)
    e_ref, f_ref = reference(export_factory, water_atoms)
    assert energy == pytest.approx(e_ref, rel=1e-6)
    # Mixed: a classical system (harmonic O-H bonds) with the first 6 waters modelled by maskpot.
    mm = openmm.System()
    for atom in top.atoms():
        mm.addParticle(atom.element.mass)
    mm.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    bonds = openmm.HarmonicBondForce()
    for k in range(0, len(frame), 3):
        bonds.addBond(k, k + 1, 0.09572, 4e5)
        bonds.addBond(k, k + 2, 0.09572, 4e5)
    mm.addForce(bonds)
    ml_atoms = list(range(18))
    mixed = potential.createMixedSystem(top, mm, ml_atoms)
    e_mixed, _ = openmm_energy_forces(mixed, frame.positions / 10)
    e_mm, _ = openmm_energy_forces(mm, frame.positions / 10)
    sub = water_atoms[ml_atoms]
    e_sub, _ = reference(export_factory, sub)
    # The bonded terms inside the ML region are removed; the ML energy of the region is added.
    e_mm_region = _bond_energy(frame.positions[:18] / 10, range(0, 18, 3))
    assert e_mixed == pytest.approx(e_mm - e_mm_region + e_sub, rel=1e-6)


def _bond_energy(pos_nm, oxygens):
    e = 0.0
    for k in oxygens:
        for h in (k + 1, k + 2):
            r = np.linalg.norm(pos_nm[h] - pos_nm[k])
            e += 0.5 * 4e5 * (r - 0.09572) ** 2
    return e


def test_topology_export_works_with_plain_torchforce(checkpoint_factory, export_factory, water_atoms, tmp_path):
    from maskpot.export import export_checkpoint

    pdb = tmp_path / "water.pdb"
    water_atoms.write(pdb)
    out = export_checkpoint(checkpoint_factory("painn"), "openmm", tmp_path / "water-openmm.pt", topology=pdb)
    code = f"""
import sys, torch, openmm, openmmtorch, numpy as np
sys.path = [p for p in sys.path if 'maskpot' not in p]
f = openmmtorch.TorchForce({str(out)!r})
f.setUsesPeriodicBoundaryConditions(True)
f.setOutputsForces(True)
s = openmm.System()
for z in {list(map(int, water_atoms.numbers))!r}:
    s.addParticle(16.0 if z == 8 else 1.0)
L = {float(water_atoms.cell[0, 0]) / 10!r}
s.setDefaultPeriodicBoxVectors(openmm.Vec3(L, 0, 0), openmm.Vec3(0, L, 0), openmm.Vec3(0, 0, L))
s.addForce(f)
c = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName('Reference'))
c.setPositions(np.array({water_atoms.positions.tolist()!r}) / 10)
print(c.getState(getEnergy=True).getPotentialEnergy()._value)
assert 'maskpot' not in sys.modules
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    e_ref, _ = reference(export_factory, water_atoms)
    assert float(res.stdout.split()[-1]) == pytest.approx(e_ref, rel=1e-6)


def test_bad_inputs(export_factory, water_atoms):
    model = str(export_factory("openmm"))
    with pytest.raises(ValueError, match="Na not known"):
        create_force(model, [11, 1, 1])
    with pytest.raises(ValueError, match="re-export with --target openmm"):
        create_force(str(export_factory("lammps")), [8, 1, 1])
    cluster = Frame(positions=water_atoms.positions, numbers=water_atoms.numbers)
    with pytest.raises(ValueError, match="no periodic cell"):
        system_from_frame(cluster, model)
