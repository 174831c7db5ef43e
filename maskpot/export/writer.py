"""``maskpot export``: checkpoint -> self-describing TorchScript file or AOTInductor package for one engine."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

import maskpot
from maskpot.atomic import atomic_write, exclusive_output
from maskpot.export.metadata import EXPORT_FORMATS, METADATA_NAME, build_metadata
from maskpot.export.targets import AseModel, LammpsModel, OpenMMModel
from maskpot.kernels import available as kernels_available
from maskpot.kernels import check_kernels
from maskpot.kernels import egnn as fused_egnn
from maskpot.kernels import gns as fused_gns
from maskpot.kernels import painn as fused_painn
from maskpot.kernels.neighbors import use_fused_neighbors

TARGETS = ("openmm", "lammps", "ase")
# What kernels="fused" swaps in (maskpot.kernels): PaiNN's message and update steps, EGNN's edge step and GNS's
# edge update and decoder, in every target, and the neighbour search, in the targets that find their own
# neighbours (LAMMPS gives the edges).
FUSED_BACKBONES = ("painn", "egnn", "gns")
FUSED_NEIGHBOR_TARGETS = ("ase", "openmm")


def check_options(target: str, dtype: str, export_format: str = EXPORT_FORMATS[0]) -> None:
    """One-line ValueError for an unknown target, dtype or format, or a target the format cannot hold."""
    if target not in TARGETS:
        raise ValueError(f"unknown export target {target!r}; choose one of {', '.join(TARGETS)}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"unknown dtype {dtype!r}; choose float32 or float64")
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {export_format!r}; choose {' or '.join(EXPORT_FORMATS)}")
    if export_format == "aoti":
        from maskpot.export.aoti import PACKAGE_TARGETS

        if target not in PACKAGE_TARGETS:
            raise ValueError(f"--format aoti packages --target {', '.join(PACKAGE_TARGETS)}, not {target}")


def _prepared(potential: torch.nn.Module, dtype: str) -> torch.nn.Module:
    """``potential`` in ``dtype``, in eval mode, without parameter gradients."""
    potential = potential.to(torch.float64 if dtype == "float64" else torch.float32).eval()
    for p in potential.parameters():
        p.requires_grad_(False)
    return potential


def build_module(potential: torch.nn.Module, config: dict, target: str, dtype: str,
                 kernels: str = "reference") -> torch.jit.ScriptModule:
    """Script the wrapper of ``target`` around ``potential`` (converted to ``dtype``) with ``kernels`` ("fused":
    every part that has an operator in maskpot.kernels uses it, see :func:`has_fused_kernels`; "reference":
    plain torch)."""
    check_options(target, dtype)
    check_kernels(kernels)
    potential = _prepared(potential, dtype)
    if kernels == "fused":
        if not has_fused_kernels(config["backbone"], target):
            raise ValueError(f"no fused kernels for the {config['backbone']} backbone with --target {target}; "
                             f"export with --kernels reference")
        potential = copy.deepcopy(potential)
        fused_painn.use_fused(potential)  # each: nothing for other backbones
        fused_egnn.use_fused(potential)
        fused_gns.use_fused(potential)
    cls = {"ase": AseModel, "lammps": LammpsModel, "openmm": OpenMMModel}[target]
    module = cls(potential, list(config["species"]), dtype, target, kernels)
    if kernels == "fused" and target in FUSED_NEIGHBOR_TARGETS:
        use_fused_neighbors(module)
    return torch.jit.script(module)


def has_fused_kernels(backbone: str, target: str) -> bool:
    """Whether an export of ``backbone`` for ``target`` has a part that maskpot.kernels fuses: the edge steps of
    PaiNN, EGNN and GNS (any target) or the neighbour search (ASE and OpenMM, any backbone)."""
    return backbone in FUSED_BACKBONES or target in FUSED_NEIGHBOR_TARGETS


def default_kernels(backbone: str, target: str, topology: str | Path | None = None,
                    export_format: str = EXPORT_FORMATS[0]) -> str:
    """"fused" where the export has a fused part (:func:`has_fused_kernels`) and the library is built, else
    "reference". An OpenMM export with a topology is for plain ``openmmtorch.TorchForce(file)`` without maskpot,
    and an AOTInductor package traces torch's own operators, so both take "reference"."""
    if topology is not None or export_format == "aoti":
        return "reference"
    return "fused" if has_fused_kernels(backbone, target) and kernels_available() else "reference"


def topology_atomic_numbers(topology_file: str | Path) -> list[int]:
    """Atomic numbers of a structure file readable by ASE (PDB, extxyz, ...)."""
    from maskpot.data import read

    frames = read(topology_file)
    return [int(z) for z in frames[0].numbers]


def save_module(module: torch.jit.ScriptModule, metadata: dict, out: str | Path) -> Path:
    """Write atomically: temp file in the target folder, then rename."""
    extra = {METADATA_NAME: json.dumps(metadata, indent=1)}
    return atomic_write(out, lambda tmp: torch.jit.save(module, tmp, _extra_files=extra))


def export_checkpoint(checkpoint: str | Path, target: str, out: str | Path, dtype: str | None = None,
                      topology: str | Path | None = None, export_format: str | None = None,
                      kernels: str | None = None) -> Path:
    """Export a finetuned checkpoint for ``target`` (openmm, lammps or ase) to ``out``.

    ``dtype`` defaults to the checkpoint's. ``topology`` (OpenMM only) bakes the atomic numbers in, so plain
    ``openmmtorch.TorchForce(out)`` (with ``setOutputsForces(True)``) works without maskpot.
    ``export_format`` "torchscript" (the default, None) writes a TorchScript file, "aoti" an AOTInductor
    package (``out`` must end in .pt2; lammps and ase targets; compiling takes minutes, see maskpot.export.aoti).
    A second export to the same ``out`` while this one runs stops at once (``maskpot.atomic.exclusive_output``).
    ``kernels`` ("fused" or "reference", see maskpot.kernels) defaults to :func:`default_kernels`; a fused export
    needs maskpot's kernels library loaded wherever it runs (maskpot's loaders do it), a reference export needs
    torch alone.
    """
    export_format = export_format or EXPORT_FORMATS[0]
    if export_format == "aoti" and Path(out).suffix != ".pt2":
        raise ValueError(f"{out}: an AOTInductor package is a .pt2 file; choose an --out ending in .pt2")
    if kernels is not None:
        check_kernels(kernels)
        if kernels == "fused" and export_format == "aoti":
            raise ValueError("--kernels fused applies to --format torchscript only (a package traces torch's own "
                             "operators); use --kernels reference")
    with exclusive_output(out):
        return _export(checkpoint, target, out, dtype, topology, export_format, kernels)


def _export(checkpoint, target, out, dtype, topology, export_format, kernels) -> Path:
    from maskpot.train.checkpoint import load_checkpoint, load_potential

    ckpt = load_checkpoint(checkpoint)
    if ckpt.kind != "finetuned":
        raise ValueError(f"{checkpoint}: a {ckpt.kind} checkpoint has no energy/force head; finetune it first")
    config = dict(ckpt.config if isinstance(ckpt.config, dict) else ckpt.config.to_dict())
    dtype = dtype or config.get("dtype", "float32")
    check_options(target, dtype, export_format)
    if topology is not None and target != "openmm":
        raise ValueError("--topology applies to --target openmm only")
    if topology is not None and export_format == "aoti":
        raise ValueError("--topology is for a TorchScript file that plain openmmtorch.TorchForce loads; a .pt2 "
                         "package runs through maskpot.openmm.create_force, which takes the topology")
    kernels = kernels or default_kernels(config["backbone"], target, topology, export_format)
    versions = {"maskpot": maskpot.__version__, "torch": torch.__version__, "numpy": np.__version__}
    meta = build_metadata(target=target, config=config, dtype=dtype, checkpoint=checkpoint,
                          data=getattr(ckpt, "data", {}) or {}, versions=versions, export_format=export_format,
                          kernels=kernels)
    if export_format == "aoti":
        from maskpot.export.aoti import PackagedGraph, package

        graph = PackagedGraph(_prepared(load_potential(checkpoint), dtype), dtype, target)
        return atomic_write(out, lambda tmp: package(graph, meta, tmp))
    module = build_module(load_potential(checkpoint), config, target, dtype, kernels)
    if topology is not None:
        numbers = topology_atomic_numbers(topology)
        unknown = sorted(set(numbers) - set(config["species"]))
        if unknown:
            raise ValueError(f"{topology}: element(s) Z={unknown} not known to this model (species {config['species']})")
        module.atomic_numbers = torch.tensor(numbers, dtype=torch.long)
        meta["topology_atomic_numbers"] = numbers
    return save_module(module, meta, out)
