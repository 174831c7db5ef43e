"""Timing of each row of benchmarks/speed.py: the exported model called from PyTorch (the model-only bound), the
same model eager, OpenMM with the export in a TorchForce and in a PythonForce, LAMMPS with the pair_style plugin
on N ranks, AOTInductor packages beside their TorchScript files (interleaved), and classical TIP3P in OpenMM.
Every function returns ms per MD step (or per call) for each repeat.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import interleaved, timed_calls

TIMESTEP_FS = 0.5  # every MD row, so that ns/day compare
RIGID_TIMESTEP_FS = 2.0  # rigid TIP3P at its usual step


def model_only(frame, files, steps, repeats) -> tuple[list[float], dict]:
    """The exported module (ASE target) called directly, and the neighbour search it runs, alone (share of the
    step)."""
    from maskpot.export.metadata import kernels_of
    from maskpot.models.neighbors import neighbor_pairs

    call, meta = _ase_call(frame, files["ase"])
    times = timed_calls(call, steps, repeats)
    # the search the export runs: maskpot's C++ operator in a fused file (loaded with it), else the pure-torch one
    search = torch.ops.maskpot.neighbor_pairs if kernels_of(meta) == "fused" else torch.jit.script(neighbor_pairs)
    model_dtype = torch.float64 if meta["dtype"] == "float64" else torch.float32
    pos, cell, pbc = _ase_inputs(frame)
    p, c = pos.to(model_dtype), cell.to(model_dtype)
    cutoff = float(meta["cutoff_angstrom"])
    nbr = timed_calls(lambda: search(p, c, pbc, cutoff), steps, repeats)
    edges = int(search(p, c, pbc, cutoff)[0].shape[1])
    return times, {"neighbour_ms": float(np.median(nbr)), "neighbour_share": float(np.median(nbr) / np.median(times)),
                   "edges": edges}


def model_only_package(frame, files, steps, repeats) -> tuple[list[float], dict]:
    """The ASE target's AOTInductor package called directly, its repeats interleaved with the TorchScript file's
    (the ratio of the two is measured side by side); the TorchScript times are returned in the extra dict."""
    calls = {"pt2": _ase_call(frame, files["ase-aoti"])[0], "torchscript": _ase_call(frame, files["ase"])[0]}
    for call in calls.values():
        timed_calls(call, 1, 1)  # warm-up calls
    _, times = interleaved({name: (lambda k, call=call: timed_calls(call, steps, 1, warmup=0))
                            for name, call in calls.items()}, repeats)
    return times["pt2"], {"torchscript_ms_interleaved": float(np.median(times["torchscript"]))}


def _ase_inputs(frame):
    return (torch.tensor(frame.positions, dtype=torch.float64), torch.tensor(np.asarray(frame.cell), dtype=torch.float64),
            torch.tensor([True, True, True]))


def _ase_call(frame, path):
    """(call of the ASE-target export at ``path`` on ``frame``, its metadata); TorchScript or package alike."""
    from maskpot.export.loading import load_exported

    module, meta = load_exported(path)
    pos, cell, pbc = _ase_inputs(frame)
    numbers = torch.tensor(frame.numbers, dtype=torch.long)
    return (lambda: module(pos, numbers, cell, pbc)), meta


def eager(frame, checkpoint, steps, repeats) -> list[float]:
    """The same Potential in eager PyTorch: torch neighbour search + energy_forces (no TorchScript)."""
    from maskpot.models.compute import energy_forces
    from maskpot.models.neighbors import neighbor_pairs
    from maskpot.models.potential import species_indices
    from maskpot.train.checkpoint import load_potential

    potential = load_potential(checkpoint).eval()
    dtype = potential.energy_shift.dtype
    pos = torch.tensor(frame.positions, dtype=dtype)
    cell = torch.tensor(np.asarray(frame.cell), dtype=dtype)
    pbc = torch.tensor([True, True, True])
    species = torch.tensor(species_indices(frame.numbers, potential.species))
    batch = torch.zeros(len(frame), dtype=torch.long)

    def step():
        edge_index, shifts = neighbor_pairs(pos, cell, pbc, potential.cutoff)
        return energy_forces(potential, pos, species, edge_index, shifts @ cell, batch, 1, False)

    return timed_calls(step, steps, repeats)


def openmm_steps(context, integrator, steps, repeats, warmup: int = 5) -> list[float]:
    integrator.step(warmup)
    out = []
    for _ in range(repeats):
        context.getState(getEnergy=False)  # synchronise
        t0 = time.perf_counter()
        integrator.step(steps)
        context.getState(getPositions=True)
        out.append(1e3 * (time.perf_counter() - t0) / steps)
    return out


def cpu_context(system, integrator, threads):
    import openmm

    return openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)})


def openmm_model(frame, files, steps, repeats, threads, backend: str = "torch") -> list[float]:
    """OpenMM CPU Context with the export as a TorchForce (backend "torch") or a PythonForce ("python")."""
    import openmm
    from openmm import unit

    from maskpot.openmm.system import system_from_frame

    system, _, positions = system_from_frame(frame, str(files["openmm"]), backend=backend, device="cpu")
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, TIMESTEP_FS * unit.femtosecond)
    context = cpu_context(system, integrator, threads)
    context.setPositions(positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    return openmm_steps(context, integrator, steps, repeats)


def tip3p(frame, rigid: bool, steps, repeats, threads) -> list[float]:
    import openmm
    from openmm import unit

    from maskpot.data.tip3p import tip3p_system
    from maskpot.data.units import NM_TO_ANGSTROM

    _, system = tip3p_system(len(frame) // 3, float(frame.cell[0, 0]), rigid=rigid)
    dt = RIGID_TIMESTEP_FS if rigid else TIMESTEP_FS
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, dt * unit.femtosecond)
    context = cpu_context(system, integrator, threads)
    context.setPositions(frame.positions / NM_TO_ANGSTROM)
    if rigid:
        context.applyConstraints(1e-6)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    return openmm_steps(context, integrator, steps, repeats)


def lammps_row(frame, files, steps, repeats, ranks, threads, scratch: Path) -> tuple[list[float], dict]:
    """ms/step of each of ``repeats`` separate ``maskpot md --engine lammps`` runs on ``ranks`` MPI ranks (NVT
    300 K, each after a warm-up run; LAMMPS' "Loop time" of the timed run only), and the last run's timing
    breakdown (%)."""
    (times,), log = _lammps_runs(frame, [files["lammps"]], steps, repeats, ranks, threads, scratch)
    return times, {"lammps_breakdown_pct": lammps_breakdown(log)}


def lammps_package_row(frame, files, steps, repeats, threads, scratch: Path) -> tuple[list[float], dict]:
    """:func:`lammps_row` of the lammps target's package on one rank, its runs alternating with the TorchScript
    file's (whose median ms/step is returned as ``torchscript_ms_interleaved``)."""
    (times, script), log = _lammps_runs(frame, [files["lammps-aoti"], files["lammps"]], steps, repeats, 1, threads,
                                        scratch)
    return times, {"lammps_breakdown_pct": lammps_breakdown(log),
                   "torchscript_ms_interleaved": float(np.median(script))}


def _lammps_runs(frame, models, steps, repeats, ranks, threads, scratch: Path) -> tuple[list[list[float]], str]:
    """ms/step of ``repeats`` runs of each model file, the files taking turns; the log of the first file's last
    run."""
    from maskpot.lammps.md import run_lammps_md

    times, log = [[] for _ in models], ""
    for k in range(repeats):
        for n, model in enumerate(models):
            result = run_lammps_md(model, frame, steps=steps, timestep_fs=TIMESTEP_FS, report_interval=steps,
                                   out_prefix=scratch / f"md-{ranks}-{n}", nprocs=ranks, seed=k,
                                   warmup_steps=max(5, steps // 5), threads=threads)
            times[n].append(result["ms_per_step"])
            if n == 0:
                log = Path(result["log"]).read_text()
    return times, log


TIMING_LINE = re.compile(r"^(Pair|Neigh|Comm|Modify|Output|Other)\s*\|.*\|\s*([0-9.]+)\s*$", re.M)


def lammps_breakdown(log: str) -> dict:
    """LAMMPS' MPI task timing breakdown of the last run: {section: % of the loop time}."""
    return {name: float(pct) for name, pct in TIMING_LINE.findall(log.split("Loop time of")[-1])}
