"""Build an ``openmmtorch.TorchForce`` from a maskpot export (``--target openmm``).

The exported module takes positions and box vectors in nm and returns kJ/mol (and kJ/mol/nm for
force-centric models); the atomic numbers of the ML atoms are stored in it here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch  # must be imported before OpenMM loads its plugins (see ensure_torch_plugin)

from maskpot.export.metadata import read_metadata

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
                 periodic: bool | None = None):
    """A ``TorchForce`` applying the exported model to the ML atoms.

    Args:
        model_file: file written by ``maskpot export --target openmm``.
        atomic_numbers_or_topology: an ``openmm.app.Topology`` or the atomic numbers of all particles.
        atoms: particle indices of the ML region (default: all particles).
        periodic: use periodic boundary conditions; default: whether the topology has box vectors (True for a
            list of atomic numbers). A periodic model in a non-periodic system sees no images.
    """
    meta = read_metadata(model_file)
    if meta["target"] != "openmm":
        raise ValueError(f"{model_file}: exported for {meta['target']}; re-export with --target openmm")
    ensure_torch_plugin()
    import openmmtorch

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
    module = torch.jit.load(str(model_file))
    module.atomic_numbers = torch.tensor(numbers, dtype=torch.long)
    module.atoms = torch.tensor(atoms if atoms is not None else [], dtype=torch.long)
    force = openmmtorch.TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setOutputsForces(meta["model_kind"] == "force-centric")
    return force
