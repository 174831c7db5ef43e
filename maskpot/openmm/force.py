"""Build an OpenMM force from a maskpot export (``--target openmm``): openmm-torch's ``TorchForce`` or OpenMM's own
``PythonForce`` calling the same module.

The exported module takes positions and box vectors in nm and returns the energy (kJ/mol) and the forces
(kJ/mol/nm); the atomic numbers of the ML atoms are stored in it here. Backends:

- ``"torch"``: ``openmmtorch.TorchForce``; the module runs inside OpenMM's C++ on the platform's device (openmm-torch
  moves it to the GPU of the CUDA platform). Needs an openmm-torch built for the installed torch (PyPI's
  openmmtorch 1.5 works with torch 2.9 only).
- ``"python"``: ``openmm.PythonForce``; OpenMM calls a Python function each step, which runs the module on
  ``device`` (any platform). Needs only OpenMM >= 8.3 and torch, so it serves every torch version.
- ``"auto"``: ``"torch"`` when openmmtorch imports and evaluates a TorchForce in this process, else ``"python"``.

openmmtorch is imported only for the torch backend (and the auto probe): a process without it uses ``"python"``.
An AOTInductor package (``maskpot export --target openmm --format aoti``) runs through ``"python"`` only
(``"auto"`` chooses it), on the CPU: ``maskpot.export.aoti.OpenMMPackage`` has the module's inputs and outputs.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Sequence

import torch  # must be imported before OpenMM loads its plugins (see ensure_torch_plugin)

from maskpot.errors import first_line
from maskpot.export.loading import load_exported, resolve_device
from maskpot.export.metadata import read_metadata

log = logging.getLogger(__name__)
BACKENDS = ("torch", "python", "auto")

_PLUGINS_RELOADED = False


def ensure_torch_plugin() -> None:
    """Make OpenMM's Torch plugin usable even if ``openmm`` was imported before ``torch``.

    OpenMM loads plugins at import; the Torch plugin only resolves once torch's libraries are loaded, so when
    openmm came first (OpenMM-ML does that) its kernels are missing and Context creation fails with
    "Specified a Platform for a Context which does not support all required kernels". Reloading the plugin
    folder after torch is loaded fixes it.
    """
    global _PLUGINS_RELOADED
    import openmm

    failed = [f for f in openmm.Platform.getPluginLoadFailures() if "Torch" in f and "OpenCL" not in f and "CUDA" not in f]
    if failed and not _PLUGINS_RELOADED:
        openmm.Platform.loadPluginsFromDirectory(os.path.join(openmm.version.openmm_library_path, "plugins"))
        _PLUGINS_RELOADED = True


PRECISIONS = {"single": "float32", "double": "float64"}  # OpenMM-ML's precision names -> export dtypes


def import_openmmtorch():
    """``openmmtorch``, imported without the "importing 'simtk.openmm' is deprecated" warning its SWIG module
    triggers (it imports ``simtk.openmm``, whose shim logs that warning on the root logger)."""
    import sys

    if "simtk.openmm" not in sys.modules:
        def not_simtk(record: logging.LogRecord) -> bool:
            return "simtk.openmm" not in record.getMessage()

        root = logging.getLogger()
        root.addFilter(not_simtk)
        try:
            import simtk.openmm  # noqa: F401
        finally:
            root.removeFilter(not_simtk)
    import openmmtorch

    return openmmtorch


def check_precision(model_file: str, meta: dict, precision: str | None) -> None:
    """Refuse an OpenMM-ML ``precision`` ("single" | "double") the export was not made in."""
    if precision is None:
        return
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose 'single' or 'double'")
    if PRECISIONS[precision] != meta["dtype"]:
        other = next(p for p, d in PRECISIONS.items() if d == meta["dtype"])
        raise ValueError(f"precision={precision!r} needs a {PRECISIONS[precision]} export but {model_file} is "
                         f"{meta['dtype']}: re-export with --dtype {PRECISIONS[precision]}, or pass "
                         f"precision={other!r}")


def _atomic_numbers(system_atoms) -> list[int]:
    """Atomic numbers from an OpenMM Topology or a sequence of ints."""
    if hasattr(system_atoms, "atoms"):
        numbers = []
        for atom in system_atoms.atoms():
            if atom.element is None:
                raise ValueError(f"atom {atom.index} ({atom.name}) of the topology has no element")
            numbers.append(int(atom.element.atomic_number))
        return numbers
    return [int(z) for z in system_atoms]


def create_force(model_file: str, atomic_numbers_or_topology, atoms: Sequence[int] | None = None,
                 periodic: bool | None = None, precision: str | None = None, backend: str = "auto",
                 device: str = "auto"):
    """An OpenMM force applying the exported model to the ML atoms.

    Args:
        model_file: file written by ``maskpot export --target openmm``: TorchScript (either backend) or an
            AOTInductor package (``--format aoti``: the python backend).
        atomic_numbers_or_topology: an ``openmm.app.Topology`` or the atomic numbers of all particles.
        atoms: particle indices of the ML region (default: all particles).
        periodic: use periodic boundary conditions; default: whether the topology has box vectors (True for a
            list of atomic numbers). A periodic model in a non-periodic system sees no images.
        precision: "single" or "double" (OpenMM-ML's names): refused unless the export has that dtype
            (float32, float64); None takes the export's.
        backend: "torch" (``openmmtorch.TorchForce``), "python" (``openmm.PythonForce``) or "auto" (torch when
            openmm-torch works in this process, else python); see the module docstring.
        device: "cpu", "cuda" ("cuda:K") or "auto" (cuda when torch sees one). The python backend runs the model
            there; the torch backend runs it on the device of the OpenMM platform (openmm-torch's rule), so
            there it is only checked. Asking for cuda without a CUDA device is a one-line ValueError.

    During the simulation the model raises (OpenMM reports an ``OpenMMException`` holding the line
    ``maskpot: the model's energy or forces are not finite ...; closest pair: ...``, particles numbered as in the
    System) instead of returning NaN.
    """
    meta = read_metadata(model_file)
    if meta["target"] != "openmm":
        raise ValueError(f"{model_file}: exported for {meta['target']}; re-export with --target openmm")
    check_precision(model_file, meta, precision)
    if meta["export_format"] == "aoti":  # openmm-torch's TorchForce loads TorchScript only
        if backend == "torch":
            raise ValueError(f"{model_file}: an AOTInductor package runs through backend='python' (OpenMM's "
                             "PythonForce); openmm-torch's TorchForce loads TorchScript only")
        backend = "python" if backend == "auto" else backend
        device = "cpu" if device == "auto" else device  # packages are compiled for the CPU
    backend = choose_backend(backend)
    torch_device = resolve_device(device)

    numbers = _atomic_numbers(atomic_numbers_or_topology)
    if periodic is None:
        periodic = (atomic_numbers_or_topology.getPeriodicBoxVectors() is not None
                    if hasattr(atomic_numbers_or_topology, "getPeriodicBoxVectors") else True)
    if atoms is not None:
        atoms = [int(i) for i in atoms]
        if any(i < 0 or i >= len(numbers) for i in atoms):
            raise ValueError(f"ML atom indices must lie in 0..{len(numbers) - 1}")
        numbers = [numbers[i] for i in atoms]
    unknown = sorted(set(numbers) - set(meta["species"]))
    if unknown:
        import ase.data

        names = ", ".join(ase.data.chemical_symbols[z] for z in unknown)
        raise ValueError(f"element(s) {names} not known to the model {model_file} (species {', '.join(meta['species_symbols'])})")
    # torch backend: loaded on the CPU; openmm-torch moves the module to the GPU of a CUDA platform itself
    module, _ = load_exported(model_file, torch_device if backend == "python" else "cpu")
    module.atomic_numbers = torch.tensor(numbers, dtype=torch.long, device=module.atomic_numbers.device)
    # a file without ``outputs_forces`` returns the energy alone unless its model is force-centric
    outputs_forces = (bool(module.outputs_forces) if hasattr(module, "outputs_forces")
                      else meta["model_kind"] == "force-centric")
    if backend == "python":
        return _python_force(model_file, module, atoms, bool(periodic), outputs_forces)
    module.atoms = torch.tensor(atoms if atoms is not None else [], dtype=torch.long)
    force = import_openmmtorch().TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setOutputsForces(outputs_forces)
    # No "useCUDAGraphs": the model's graph depends on the neighbour count and its checks read values back on the
    # host, so a CUDA graph of it cannot be captured.
    return force


def choose_backend(backend: str) -> str:
    """The backend ("torch" | "python") that serves a requested ``backend`` ("torch" | "python" | "auto"); asking
    for "torch" where openmm-torch does not work is a one-line RuntimeError saying why."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown OpenMM backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "python":
        return backend
    problem = torchforce_problem()
    if problem is None:
        return "torch"
    if backend == "torch":
        raise RuntimeError(f"backend='torch' needs a working openmm-torch, but {problem}; use backend='python'")
    log.info("OpenMM backend: PythonForce, because %s", problem)
    return "python"


class _ProbeModule(torch.nn.Module):
    """E = sum x^2, forces -2x: the model the backend probe gives a TorchForce."""

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (positions * positions).sum(), -2.0 * positions


@functools.cache
def torchforce_problem() -> str | None:
    """None when openmmtorch imports and a TorchForce evaluates correctly on the Reference platform in this
    process; otherwise what went wrong (e.g. the import fails, or openmmtorch 1.5 with torch >= 2.10 raises
    "set_stride is not allowed ..."). Checked once per process."""
    import numpy as np

    try:
        ensure_torch_plugin()
        openmmtorch = import_openmmtorch()
    except Exception as exc:  # ImportError, or OSError from its libraries: the reason is reported
        return f"openmmtorch does not import ({type(exc).__name__}: {first_line(exc)})"
    try:
        import openmm

        force = openmmtorch.TorchForce(torch.jit.script(_ProbeModule()))
        force.setOutputsForces(True)
        system = openmm.System()
        system.addParticle(1.0)
        system.addForce(force)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions([openmm.Vec3(0.1, 0.2, 0.3)])
        forces = context.getState(getForces=True).getForces(asNumpy=True)._value
    except Exception as exc:  # e.g. openmmtorch 1.5 with torch >= 2.10: the reason is reported
        return f"openmm-torch fails a test evaluation ({type(exc).__name__}: {first_line(exc)})"
    if not np.allclose(forces, [[-0.2, -0.4, -0.6]]):
        return f"openmm-torch gives wrong forces in a test evaluation ({forces.tolist()})"
    return None


def _python_force(model_file: str, module, atoms: list[int] | None, periodic: bool, outputs_forces: bool):
    """An ``openmm.PythonForce`` calling ``module`` on the ML particles (``setParticles``: OpenMM hands over and
    takes back only those)."""
    import openmm

    if not outputs_forces:
        raise ValueError(f"{model_file}: this export returns no forces (made by an older maskpot); re-export it "
                         "with --target openmm to use backend='python'")
    force = openmm.PythonForce(ModelComputation(module, periodic, atoms))
    force.setUsesPeriodicBoundaryConditions(periodic)
    if atoms is not None:
        force.setParticles(atoms)
    return force


# node numbers in the model's messages ("atom 5", "atoms 1 and 4"): renumbered as System particles
_NODE_NAMES = re.compile(r"\b(atoms? )(\d+)(?:( and )(\d+))?")


class ModelComputation:
    """What OpenMM's PythonForce calls each step: ``State`` (positions, box in nm) -> (energy kJ/mol, forces
    kJ/mol/nm as an (N,3) float64 array) of the exported OpenMM module, run on the module's device.

    ``particles`` (the ML particles, or None for all) only renames atoms in the model's error messages: with
    ``PythonForce.setParticles`` the module sees the ML particles as atoms 0..n-1. A failure inside the model
    raises a one-line RuntimeError (OpenMM turns it into an ``OpenMMException`` with that message).
    """

    def __init__(self, module, periodic: bool, particles: list[int] | None = None):
        from openmm.unit import nanometer

        self.module, self.periodic, self.particles, self.nm = module, periodic, particles, nanometer
        self.device = module.atomic_numbers.device

    def __call__(self, state):
        positions = torch.from_numpy(state.getPositions(asNumpy=True).value_in_unit(self.nm)).to(self.device)
        box = None
        if self.periodic:
            box = torch.from_numpy(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(self.nm)).to(self.device)
        try:
            energy, forces = self.module(positions, box)
        except (torch.jit.Error, RuntimeError, ValueError) as exc:  # the model's message, not a traceback
            raise RuntimeError(self._particle_names(first_line(exc))) from None
        return float(energy), forces.detach().cpu().numpy()

    def _particle_names(self, message: str) -> str:
        if self.particles is None:
            return message

        def rename(m: re.Match) -> str:
            out = m.group(1) + str(self.particles[int(m.group(2))])
            return out + (m.group(3) + str(self.particles[int(m.group(4))]) if m.group(4) else "")

        return _NODE_NAMES.sub(rename, message)
