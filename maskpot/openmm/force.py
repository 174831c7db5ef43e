"""Build an ``openmmtorch.TorchForce`` from a maskpot export (``--target openmm``).

The exported module takes positions and box vectors in nm and returns the energy (kJ/mol) and the forces
(kJ/mol/nm); the atomic numbers of the ML atoms are stored in it here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch  # must be imported before OpenMM loads its plugins (see ensure_torch_plugin)

from maskpot.export.metadata import load_kernels_for, read_metadata

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
                 periodic: bool | None = None, precision: str | None = None):
    """A ``TorchForce`` applying the exported model to the ML atoms.

    Args:
        model_file: file written by ``maskpot export --target openmm``.
        atomic_numbers_or_topology: an ``openmm.app.Topology`` or the atomic numbers of all particles.
        atoms: particle indices of the ML region (default: all particles).
        periodic: use periodic boundary conditions; default: whether the topology has box vectors (True for a
            list of atomic numbers). A periodic model in a non-periodic system sees no images.
        precision: "single" or "double" (OpenMM-ML's names): refused unless the export has that dtype
            (float32, float64); None takes the export's.

    During the simulation the model raises (OpenMM reports an ``OpenMMException`` holding the line
    ``maskpot: the model's energy or forces are not finite ...; closest pair: ...``) instead of returning NaN.
    """
    meta = read_metadata(model_file)
    if meta["target"] != "openmm":
        raise ValueError(f"{model_file}: exported for {meta['target']}; re-export with --target openmm")
    check_precision(model_file, meta, precision)
    ensure_torch_plugin()
    openmmtorch = import_openmmtorch()

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
    load_kernels_for(meta)
    module = torch.jit.load(str(model_file))
    module.atomic_numbers = torch.tensor(numbers, dtype=torch.long)
    module.atoms = torch.tensor(atoms if atoms is not None else [], dtype=torch.long)
    force = openmmtorch.TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    # a file without ``outputs_forces`` returns the energy alone unless its model is force-centric
    if hasattr(module, "outputs_forces"):
        force.setOutputsForces(bool(module.outputs_forces))
    else:
        force.setOutputsForces(meta["model_kind"] == "force-centric")
    return force
