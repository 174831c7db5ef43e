"""AOTInductor packages (``maskpot export --format aoti``): the energy+forces graph of an export compiled ahead of
time into a ``.pt2`` file, and its Python loader.

Units: inside a package Angstrom, eV, eV/Angstrom for every target; the loader of an ``--target openmm`` package
converts at the engine boundary (nm, kJ/mol), as the TorchScript OpenMM file does.
``torch.export`` cannot trace a module that calls ``torch.autograd.grad`` (the forces), so the whole
energy+forces function is first traced with ``make_fx`` (which records the backward pass as ordinary
operations), that graph is exported with dynamic atom and edge counts, and AOTInductor compiles it to C++.
Only a function whose operations do not depend on the values can be traced, so the package holds the network,
the priors and the force/virial algebra, while the parts that branch on values stay with the loaders: the
neighbour list (ASE), the species check and the finiteness checks of ``maskpot.export.core`` (this module's
loaders, pair_maskpot's checks of the outputs). The package is compiled for the CPU it was made on
(``-march=native``).

Inside the package: the compiled model (``model``), ``extra/metadata.json`` (the same metadata as a TorchScript
export, read by :func:`maskpot.export.metadata.read_metadata` with the standard library), and the few keys
LAMMPS needs as AOTInductor metadata (``maskpot.*``: the C++ loader reads them with ``get_metadata()``).
"""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Callable, Tuple

import torch
from torch import Tensor

from maskpot.data.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM
from maskpot.errors import first_line
from maskpot.export.core import ModelCore, check_finite, check_positions, spatial_order, unsort
from maskpot.export.metadata import METADATA_NAME, read_metadata
from maskpot.kernels.neighbors import neighbor_search

log = logging.getLogger(__name__)

PACKAGE_TARGETS = ("lammps", "ase", "openmm")
# Example graph for tracing: sizes that are neither 0/1 (specialised by torch's symbolic shapes) nor equal to each
# other or to a fixed size (2, 3), so the traced graph keeps the atom count N and the edge count E symbolic.
_EXAMPLE_ATOMS, _EXAMPLE_EDGES = 7, 22


class PackagedGraph(torch.nn.Module):
    """The function a ``.pt2`` package computes, for a graph whose every node is an atom of the structure.

    ``forward(positions (N,3) float64 A, atomic_numbers (N,) int64, edge_index (2,E) int64, edge_shift (E,3)
    float64 A)``, edge vectors r_e = pos[j] - pos[i] + edge_shift formed in float64, then cast to ``dtype``:
    - lammps: -> (energy () eV, node_energy (N,) eV, forces (N,3) eV/A, virial (6,) eV, xx yy zz xy xz yz), the
      outputs of ``LammpsModel.forward`` with n_local = N (``ghosts fold``) and compute_virial true;
    - ase and openmm: -> (energy () eV, forces (N,3) eV/A, virial (3,3) eV), the outputs of ``AseModel.forward``
      (the openmm loader converts them).
    All outputs float64. Atomic numbers must be among the model's species (the loaders check).
    """

    def __init__(self, potential: torch.nn.Module, dtype: str, target: str):
        super().__init__()
        if target not in PACKAGE_TARGETS:
            raise ValueError(f"no AOTInductor package for target {target} (only {', '.join(PACKAGE_TARGETS)})")
        self.core = ModelCore(potential)
        self.target = target
        self.model_dtype = torch.float64 if dtype == "float64" else torch.float32

    def forward(self, positions: Tensor, atomic_numbers: Tensor, edge_index: Tensor,
                edge_shift: Tensor) -> Tuple[Tensor, ...]:
        species_index = self.core.potential.z_to_species_index[atomic_numbers]
        edge_vec = (positions[edge_index[1]] - positions[edge_index[0]] + edge_shift).to(self.model_dtype)
        with torch.enable_grad():
            energy, node_energy, forces, w = self.core.compute(species_index, edge_index, edge_vec, positions.shape[0])
        if self.target != "lammps":
            return energy.double(), forces.double(), w.double()
        virial = torch.stack([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
        node_energy = node_energy.double()
        return node_energy.sum(), node_energy, forces.double(), virial.double()


def _example_inputs(species: list[int], cutoff: float) -> tuple[Tensor, ...]:
    """A chain of atoms 0.4 cutoff apart with edges between neighbours and next neighbours, cut to
    ``_EXAMPLE_EDGES`` edges: any graph of these sizes traces the same operations."""
    n = _EXAMPLE_ATOMS
    positions = torch.zeros((n, 3), dtype=torch.float64)
    positions[:, 0] = torch.arange(n, dtype=torch.float64) * 0.4 * cutoff
    positions[:, 1] = 0.1 * torch.arange(n, dtype=torch.float64) ** 2
    numbers = torch.tensor([species[k % len(species)] for k in range(n)], dtype=torch.int64)
    pairs = [(i, j) for i in range(n) for j in range(n) if 0 < abs(i - j) <= 2][:_EXAMPLE_EDGES]
    edge_index = torch.tensor(pairs, dtype=torch.int64).T.contiguous()
    return positions, numbers, edge_index, torch.zeros((edge_index.shape[1], 3), dtype=torch.float64)


def c_metadata(meta: dict) -> dict[str, str]:
    """The AOTInductor metadata (strings) that pair_maskpot reads: target, cutoff, species (atomic numbers, symbols,
    masses), dtype, model kind."""
    return {"maskpot.format": meta["format"], "maskpot.target": meta["target"],
            "maskpot.cutoff": repr(float(meta["cutoff_angstrom"])),
            "maskpot.species": " ".join(str(z) for z in meta["species"]), "maskpot.dtype": meta["dtype"],
            "maskpot.species_symbols": " ".join(meta["species_symbols"]),
            "maskpot.species_masses": " ".join(repr(m) for m in meta["species_masses"]),
            "maskpot.energy_centric": "1" if meta["model_kind"] == "energy-centric" else "0"}


def package(graph: PackagedGraph, metadata: dict, tmp: str) -> None:
    """Trace, export and compile ``graph`` and write the package (with ``metadata`` inside) to the path ``tmp``.

    Logs each stage: the C++ compilation takes minutes for a full-size model. Any failure of tracing, export or
    compilation becomes a one-line ValueError naming the backbone and target.
    """
    from torch.export.pt2_archive._package import package_pt2
    from torch.fx.experimental.proxy_tensor import make_fx

    what = f"{metadata['backbone']} --target {metadata['target']}"
    example = _example_inputs(list(metadata["species"]), float(metadata["cutoff_angstrom"]))
    atoms, edges = torch.export.Dim("atoms", min=1), torch.export.Dim("edges", min=0)
    start = time.perf_counter()
    try:
        log.info("AOTInductor: tracing energy and forces of %s (make_fx, symbolic shapes)", what)
        # the module's buffers (species table, normalisation) are real tensors among fake inputs: kept as constants
        traced = make_fx(graph, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*example)
        log.info("AOTInductor: exporting the graph with dynamic atom and edge counts")
        exported = torch.export.export(traced, example, strict=False,
                                       dynamic_shapes=({0: atoms}, {0: atoms}, {1: edges}, {0: edges}))
        log.info("AOTInductor: compiling to C++ and building the shared library (minutes for a full-size model)")
        files = torch._inductor.aot_compile(exported.module(), example, options={
            "aot_inductor.package": True, "aot_inductor.metadata": c_metadata(metadata)})
    except Exception as exc:  # torch's tracing/compile errors have many types; the message is what matters
        raise ValueError(f"cannot package {what} with AOTInductor: {first_line(exc)}") from None
    buffer = io.BytesIO()
    package_pt2(buffer, aoti_files=files, extra_files={METADATA_NAME: json.dumps(metadata, indent=1)})
    Path(tmp).write_bytes(buffer.getvalue())
    log.info("AOTInductor: packaged %s in %.0f s", what, time.perf_counter() - start)


# ---- loading -------------------------------------------------------------------------------------------------


def _check_species(numbers: Tensor, species: list[int]) -> None:
    """Raise (one line, naming the element) unless every atomic number is among ``species``."""
    from maskpot.models.potential import species_indices

    species_indices(numbers.numpy(), species)


def load_package(path: str | Path, device: str = "cpu") -> tuple[Callable[..., Tuple[Tensor, ...]], dict]:
    """``(model, metadata)`` of a ``.pt2`` package written by ``maskpot export --format aoti``.

    ``model`` takes the inputs of the TorchScript target's ``forward`` and returns its outputs (units and
    dtypes as there; see :class:`PackagedGraph`):
    - ase: ``model(positions A (N,3), atomic_numbers (N,), cell A (3,3), pbc (3,) bool) -> (energy eV, forces
      eV/A, virial eV (3,3))``; the neighbour list is the TorchScript file's (the edges of
      ``maskpot.models.neighbors``, found by maskpot's C++ operator where the kernels library is built);
    - lammps: ``model(positions, atomic_numbers, edge_index, edge_shift, n_local, compute_virial)``; the graph
      must hold local atoms only (n_local = N: ``ghosts fold``);
    - openmm: an :class:`OpenMMPackage` (``model(positions nm, boxvectors nm or None) -> (energy kJ/mol, forces
      kJ/mol/nm)`` for ``openmm.PythonForce``; ``model.atomic_numbers`` is set by ``maskpot.openmm.create_force``).
    As with TorchScript files, a non-finite position, energy or force or an unknown element raises one line.
    Packages are compiled for the CPU; ``device`` other than "cpu" is refused.
    """
    from torch.export.pt2_archive._package import load_pt2

    meta = read_metadata(path)
    if meta.get("export_format") != "aoti":
        raise ValueError(f"{path}: a TorchScript export, not an AOTInductor package (load it with torch.jit.load)")
    if device != "cpu":
        raise ValueError(f"{path}: AOTInductor packages of maskpot are compiled for the CPU, not {device}")
    try:
        runner = load_pt2(str(path)).aoti_runners["model"]
    except Exception as exc:
        raise RuntimeError(f"{path}: cannot load the AOTInductor package: {first_line(exc)}") from None
    species = list(meta["species"])
    cutoff = float(meta["cutoff_angstrom"])
    model_dtype = torch.float64 if meta["dtype"] == "float64" else torch.float32
    search = neighbor_search()  # the edges of maskpot.models.neighbors, by the C++ operator where it is built

    def lammps(positions: Tensor, atomic_numbers: Tensor, edge_index: Tensor, edge_shift: Tensor, n_local: int,
               compute_virial: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        positions = positions.to(torch.float64)
        if n_local != positions.shape[0]:
            raise ValueError(f"{path}: an AOTInductor package takes a graph of local atoms only (n_local "
                             f"{n_local} != {positions.shape[0]} atoms); several MPI ranks need TorchScript")
        check_positions(positions)
        _check_species(atomic_numbers, species)
        energy, node_energy, forces, virial = runner(positions, atomic_numbers, edge_index,
                                                     edge_shift.to(torch.float64))
        edge_vec = positions[edge_index[1]] - positions[edge_index[0]] + edge_shift
        check_finite(energy, forces, edge_index, edge_vec)
        return energy, node_energy, forces, virial if compute_virial else torch.zeros_like(virial)

    def ase(positions: Tensor, atomic_numbers: Tensor, cell: Tensor, pbc: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        positions = positions.to(torch.float64)
        check_positions(positions)
        _check_species(atomic_numbers, species)
        periodic = bool(pbc.any())
        box = cell.to(torch.float64) if periodic else None
        # the graph of AseModel.forward (ModelCore.evaluate_structure): atoms in spatial order, edges found in the
        # model's dtype
        order = spatial_order(positions)
        positions, atomic_numbers = positions[order], atomic_numbers[order]
        edge_index, shifts = search(positions.to(model_dtype), None if box is None else box.to(model_dtype), pbc,
                                    cutoff)
        edge_shift = shifts.to(torch.float64) @ box if box is not None else torch.zeros((edge_index.shape[1], 3),
                                                                                       dtype=torch.float64)
        energy, forces, virial = runner(positions, atomic_numbers, edge_index, edge_shift)
        check_finite(energy, forces, edge_index, positions[edge_index[1]] - positions[edge_index[0]] + edge_shift,
                     order)
        return energy, unsort(forces, order), virial

    if meta["target"] == "openmm":
        return OpenMMPackage(ase), meta
    return {"lammps": lammps, "ase": ase}[meta["target"]], meta


class OpenMMPackage:
    """The OpenMM call of a package, in OpenMM's units: ``model(positions nm (N,3), boxvectors nm (3,3) or None)
    -> (energy () kJ/mol, forces (N,3) kJ/mol/nm)``, float64, as ``OpenMMModel.forward`` of a TorchScript export
    for the atoms ``atomic_numbers`` (all of them: ``PythonForce.setParticles`` hands over the ML particles only).
    ``outputs_forces`` is True, as there."""

    outputs_forces = True

    def __init__(self, ase: Callable[..., Tuple[Tensor, ...]]):
        self._ase = ase
        self.atomic_numbers = torch.zeros(0, dtype=torch.long)

    def __call__(self, positions: Tensor, boxvectors: Tensor | None = None) -> Tuple[Tensor, Tensor]:
        n = self.atomic_numbers.shape[0]
        if n == 0:
            raise RuntimeError("maskpot: no atomic numbers set; use maskpot.openmm.create_force")
        if positions.shape[0] != n:
            raise RuntimeError(f"maskpot: the model was set up for {n} atoms but the system has {positions.shape[0]}")
        periodic = boxvectors is not None
        cell = boxvectors.to(torch.float64) * NM_TO_ANGSTROM if periodic else torch.zeros((3, 3), dtype=torch.float64)
        energy, forces, _ = self._ase(positions.to(torch.float64) * NM_TO_ANGSTROM, self.atomic_numbers, cell,
                                      torch.full((3,), periodic, dtype=torch.bool))
        return energy * EV_TO_KJ_PER_MOL, forces * (EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM)


__all__ = ["PACKAGE_TARGETS", "OpenMMPackage", "PackagedGraph", "load_package", "package"]
