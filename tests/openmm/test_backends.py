"""OpenMM backends: openmm-torch's TorchForce and OpenMM's PythonForce run the same export to the same numbers
(energies, forces, MD trajectories, OpenMM-ML systems); the python backend works where openmmtorch cannot be
imported; asking for a GPU that torch does not see is a one-line error."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch  # noqa: F401  (import before openmm, see maskpot.openmm.force.ensure_torch_plugin)
import openmm
import openmm.unit as u

from maskpot.data.frame import Frame
from maskpot.openmm import create_force
from maskpot.openmm.force import torchforce_problem
from maskpot.openmm.system import system_from_frame, topology_from_frame
from tests.conftest import water_atoms_box
from tests.openmm.test_openmm import openmm_energy_forces

needs_openmmtorch = pytest.mark.skipif(torchforce_problem() is not None, reason=str(torchforce_problem()))
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without a GPU")
FORCE_CLASS = {"torch": "TorchForce", "python": "PythonForce"}


def assert_same(a, b):
    (e_a, f_a), (e_b, f_b) = a, b
    assert e_a == pytest.approx(e_b, rel=1e-6)
    np.testing.assert_allclose(f_a, f_b, rtol=1e-6, atol=1e-6 * np.abs(f_b).max())


@needs_openmmtorch
@pytest.mark.parametrize("platform", ["CPU", "Reference"])
@pytest.mark.parametrize("backbone", ["painn", "gns"])
def test_python_force_equals_torch_force(platform, backbone, export_factory, water_atoms):
    atoms = water_atoms.copy()
    atoms.positions[::5] += atoms.cell[1]  # atoms outside the box: OpenMM may wrap them for PythonForce
    frame = Frame.from_atoms(atoms)
    model = str(export_factory("openmm", backbone))
    results = {}
    for backend in ("torch", "python"):
        system, _, pos = system_from_frame(frame, model, backend=backend)
        assert system.getForce(0).getName() == FORCE_CLASS[backend]
        results[backend] = openmm_energy_forces(system, pos, platform)
    assert np.abs(results["python"][1]).max() > 0
    assert_same(results["python"], results["torch"])


@needs_openmmtorch
def test_md_trajectories_agree(export_factory):
    """10 NVE steps and 10 Langevin steps (same seed, Reference platform) of 27 waters: the same positions and
    energies through either backend, all finite."""
    frame = Frame.from_atoms(water_atoms_box(27, 9.33))
    model = str(export_factory("openmm"))
    runs = {}
    for backend in ("torch", "python"):
        system, _, pos = system_from_frame(frame, model, backend=backend)
        out = []
        for integrator in (openmm.VerletIntegrator(0.5 * u.femtosecond),
                           openmm.LangevinMiddleIntegrator(300 * u.kelvin, 1 / u.picosecond, 0.5 * u.femtosecond)):
            if isinstance(integrator, openmm.LangevinMiddleIntegrator):
                integrator.setRandomNumberSeed(7)
            ctx = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
            ctx.setPositions(pos)
            ctx.setVelocitiesToTemperature(300 * u.kelvin, 3)
            integrator.step(10)
            state = ctx.getState(getPositions=True, getEnergy=True)
            out.append((state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
                        + state.getKineticEnergy().value_in_unit(u.kilojoule_per_mole),
                        state.getPositions(asNumpy=True).value_in_unit(u.nanometer)))
        runs[backend] = out
    for (e_py, x_py), (e_t, x_t) in zip(runs["python"], runs["torch"]):
        assert np.isfinite(e_py) and np.isfinite(x_py).all()
        assert e_py == pytest.approx(e_t, rel=1e-8)
        np.testing.assert_allclose(x_py, x_t, rtol=0, atol=1e-9)
    assert not np.allclose(runs["python"][0][1], frame.positions / 10)  # the atoms moved


@needs_openmmtorch
def test_mlpotential_python_backend_matches_torch(export_factory, water_atoms):
    """createSystem and createMixedSystem (first 6 waters ML, particles numbered in the full system)."""
    from openmmml import MLPotential

    frame = Frame.from_atoms(water_atoms)
    top = topology_from_frame(frame)
    mm = openmm.System()
    for atom in top.atoms():
        mm.addParticle(atom.element.mass)
    mm.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    potential = {b: MLPotential("maskpot", modelPath=str(export_factory("openmm")), backend=b) for b in FORCE_CLASS}
    pos = frame.positions / 10
    for make in (lambda p: p.createSystem(top), lambda p: p.createMixedSystem(top, mm, list(range(18)))):
        systems = {b: make(p) for b, p in potential.items()}
        for b, system in systems.items():
            assert FORCE_CLASS[b] in [f.getName() for f in system.getForces()]
        py, tf = (openmm_energy_forces(systems[b], pos, "Reference") for b in ("python", "torch"))
        assert_same(py, tf)
    mixed_forces = openmm_energy_forces(potential["python"].createMixedSystem(top, mm, list(range(18))), pos)[1]
    assert np.abs(mixed_forces[:18]).max() > 0 and np.abs(mixed_forces[18:]).max() == 0  # only the ML particles
    # an option given to createSystem overrides the one given to MLPotential
    system = potential["torch"].createSystem(top, backend="python")
    assert system.getForce(0).getName() == "PythonForce"


def test_bad_backend_is_one_line(export_factory):
    with pytest.raises(ValueError, match="^unknown OpenMM backend 'jax'; choose one of torch, python, auto$"):
        create_force(str(export_factory("openmm")), [8, 1, 1], backend="jax")
    with pytest.raises(ValueError, match="^unknown device 'tpu'"):
        create_force(str(export_factory("openmm")), [8, 1, 1], device="tpu")


@no_cuda
def test_cuda_without_a_gpu_is_one_line(export_factory, water_atoms):
    from openmmml import MLPotential

    from maskpot.ase import MaskpotCalculator

    top = topology_from_frame(Frame.from_atoms(water_atoms))
    calls = [lambda: create_force(str(export_factory("openmm")), top, backend="python", device="cuda"),
             lambda: create_force(str(export_factory("openmm")), top, backend="auto", device="cuda:1"),
             lambda: MLPotential("maskpot", modelPath=str(export_factory("openmm")), device="cuda").createSystem(top),
             lambda: MaskpotCalculator(str(export_factory("ase")), device="cuda")]
    for call in calls:
        with pytest.raises(ValueError) as err:
            call()
        message = str(err.value)
        assert "torch sees no CUDA device" in message and "device='cuda" in message and "\n" not in message
    # "auto" falls back to the CPU
    assert MaskpotCalculator(str(export_factory("ase")), device="auto").device == torch.device("cpu")


def test_python_backend_without_openmmtorch(export_factory, water_atoms, tmp_path):
    """A process in which openmmtorch cannot be imported: maskpot.openmm imports, backend="python" and "auto"
    build a PythonForce with the ASE calculator's energy, and backend="torch" is refused in one line."""
    from tests.openmm.test_openmm import reference

    frame = Frame.from_atoms(water_atoms)
    np.save(tmp_path / "pos.npy", frame.positions / 10)
    code = f"""
import sys
sys.modules["openmmtorch"] = None  # "import openmmtorch" raises ImportError
import numpy as np, openmm
from maskpot.data.frame import Frame
from maskpot.openmm import create_force
from maskpot.openmm.system import system_from_frame
from ase import Atoms
atoms = Atoms(numbers={list(map(int, water_atoms.numbers))!r}, positions=np.load("pos.npy") * 10,
              cell={np.asarray(water_atoms.cell).tolist()!r}, pbc=True)
for backend in ("python", "auto"):
    system, _, pos = system_from_frame(Frame.from_atoms(atoms), {str(export_factory("openmm"))!r}, backend=backend)
    assert system.getForce(0).getName() == "PythonForce"
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    print(backend, ctx.getState(getEnergy=True).getPotentialEnergy()._value)
try:
    create_force({str(export_factory("openmm"))!r}, [8, 1, 1], backend="torch")
except RuntimeError as exc:
    print("refused:", exc)
assert "openmmtorch" not in sys.modules or sys.modules["openmmtorch"] is None
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    e_ref, _ = reference(export_factory, water_atoms)
    for line, backend in zip(lines, ("python", "auto")):
        name, energy = line.split()
        assert name == backend and float(energy) == pytest.approx(e_ref, rel=1e-6)
    assert lines[2].startswith("refused: backend='torch' needs a working openmm-torch, but openmmtorch does not "
                               "import (ModuleNotFoundError: ") and lines[2].endswith("; use backend='python'")
    assert len(lines) == 3
