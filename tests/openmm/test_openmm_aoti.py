"""OpenMM from an AOTInductor package (``maskpot export --target openmm --format aoti``): OpenMM's PythonForce
runs the .pt2 to the numbers of the TorchScript export of the same checkpoint (whole system, ML region of a
larger system, OpenMM-ML), and what a package cannot do (openmm-torch's TorchForce, a baked-in topology) is
refused with one line. The package is compiled once for the module (about a CPU-minute for this tiny model)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch  # before openmm (see maskpot.openmm.force.ensure_torch_plugin)
import openmm
import openmm.unit as u

from maskpot.ase import MaskpotCalculator
from maskpot.data.frame import Frame
from maskpot.data.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM
from maskpot.export import export_checkpoint, read_metadata
from maskpot.openmm import create_force
from maskpot.openmm.system import system_from_frame, topology_from_frame
from tests.openmm.test_openmm import openmm_energy_forces

pytestmark = pytest.mark.current_stack  # the OpenMM path of a torch without openmm-torch
BACKBONE = "painn-rep"  # the short-range repulsion is part of what is compared


@pytest.fixture(scope="session")  # compiled once per run (tests/conftest.py, COSTLY_FIXTURES)
def package(checkpoint_factory, tmp_path_factory):
    out = tmp_path_factory.mktemp("aoti-openmm") / "model.pt2"
    return str(export_checkpoint(checkpoint_factory(BACKBONE), "openmm", out, export_format="aoti"))


@pytest.fixture(scope="module")
def torchscript(export_factory):
    return str(export_factory("openmm", BACKBONE, kernels="reference"))


def assert_same(a, b, rtol=1e-9):
    (e_a, f_a), (e_b, f_b) = a, b
    assert e_a == pytest.approx(e_b, rel=rtol)
    assert np.abs(f_a - f_b).max() <= rtol * np.abs(f_b).max()


def test_package_metadata(package):
    meta = read_metadata(package)
    assert meta["target"] == "openmm" and meta["export_format"] == "aoti" and meta["kernels"] == "reference"


def test_python_force_from_package_equals_torchscript_and_ase(package, torchscript, export_factory, water_atoms):
    atoms = water_atoms.copy()
    atoms.positions[::5] += atoms.cell[1]  # atoms outside the box: the package sees the same images
    frame = Frame.from_atoms(atoms)
    results = {}
    for name, model in (("package", package), ("torchscript", torchscript)):
        system, _, pos = system_from_frame(frame, model, backend="python")
        assert system.getForce(0).getName() == "PythonForce"
        results[name] = openmm_energy_forces(system, pos, "Reference")
    assert np.abs(results["package"][1]).max() > 1.0
    assert_same(results["package"], results["torchscript"])
    e_ase, f_ase = ase_reference(atoms, export_factory("ase", BACKBONE))  # the ASE calculator, in OpenMM's units
    assert_same(results["package"], (e_ase * EV_TO_KJ_PER_MOL, f_ase * EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM))


def ase_reference(atoms, model):
    atoms = atoms.copy()
    atoms.calc = MaskpotCalculator(model)
    return atoms.get_potential_energy(), atoms.get_forces()


def test_ml_region_of_a_larger_system(package, torchscript, water_atoms):
    """The first 30 atoms are ML atoms among 6 extra particles without forces: both files give the same forces on
    the ML atoms and none on the others."""
    frame = Frame.from_atoms(water_atoms)
    n = len(frame.numbers)
    ml = list(range(30))
    results = {}
    for name, model in (("package", package), ("torchscript", torchscript)):
        system = openmm.System()
        system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) * 0.1 for row in frame.cell))
        for _ in range(n):
            system.addParticle(1.0)
        system.addForce(create_force(model, list(frame.numbers), atoms=ml, backend="python"))
        results[name] = openmm_energy_forces(system, frame.positions * 0.1, "Reference")
    assert_same(results["package"], results["torchscript"])
    forces = results["package"][1]
    assert np.abs(forces[:30]).max() > 1.0 and np.abs(forces[30:]).max() == 0.0


def test_mlpotential_takes_a_package(package, torchscript, water_atoms):
    from openmmml import MLPotential

    frame = Frame.from_atoms(water_atoms)
    topology = topology_from_frame(frame)
    results = {}
    for name, model, backend in (("package", package, "auto"), ("torchscript", torchscript, "python")):
        system = MLPotential("maskpot", modelPath=model).createSystem(topology, backend=backend)
        assert system.getForce(0).getName() == "PythonForce"  # "auto" chooses PythonForce for a package
        results[name] = openmm_energy_forces(system, frame.positions * 0.1, "Reference")
    assert_same(results["package"], results["torchscript"])


def test_refusals_are_one_line(package, checkpoint_factory, tmp_path, water_atoms):
    with pytest.raises(ValueError, match=r"an AOTInductor package runs through backend='python' \(OpenMM's "
                                         r"PythonForce\); openmm-torch's TorchForce loads TorchScript only"):
        create_force(package, list(Frame.from_atoms(water_atoms).numbers), backend="torch")
    water_atoms.write(tmp_path / "top.xyz")
    r = subprocess.run([sys.executable, "-m", "maskpot", "export", str(checkpoint_factory(BACKBONE)), "--target",
                        "openmm", "--format", "aoti", "--topology", str(tmp_path / "top.xyz"),
                        "-o", str(tmp_path / "model.pt2")], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == ("error: --topology is for a TorchScript file that plain openmmtorch.TorchForce loads; "
                                "a .pt2 package runs through maskpot.openmm.create_force, which takes the topology")
    assert not (tmp_path / "model.pt2").exists()


def test_package_call_without_its_atoms_is_one_line(package):
    from maskpot.export.aoti import load_package

    model, _ = load_package(package)
    positions = torch.zeros((6, 3), dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"^maskpot: no atomic numbers set; use maskpot.openmm.create_force$"):
        model(positions)
    model.atomic_numbers = torch.tensor([8, 1, 1])
    with pytest.raises(RuntimeError, match=r"^maskpot: the model was set up for 3 atoms but the system has 6$"):
        model(positions)
