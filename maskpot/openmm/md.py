"""``maskpot md --engine openmm``: MD with an exported model, trajectory + thermo CSV, ns/day."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from maskpot.data.frame import Frame


@dataclass
class MDConfig:
    """Options of an MD run. Units: fs, K, 1/ps."""

    steps: int = 1000
    timestep_fs: float = 0.5
    temperature: float = 300.0
    ensemble: str = "nvt"  # nvt (Langevin middle integrator) or nve (velocity Verlet)
    friction_per_ps: float = 1.0
    report_interval: int = 10
    platform: str = "CPU"
    seed: int = 0


def run_openmm_md(model_file: str, frame: Frame, config: MDConfig, out_prefix: str | Path,
                  progress: Callable[[int], None] | None = None, allow_non_periodic: bool = False,
                  minimize: bool = False) -> dict:
    """Run MD and write ``<out_prefix>.dcd`` and ``<out_prefix>.csv``; returns timing and final energies.

    ``minimize`` relaxes the structure with the model (L-BFGS, at most 500 iterations) before MD.
    """
    import openmm
    import openmm.app as app
    import openmm.unit as u

    from maskpot.openmm.system import system_from_frame

    if config.ensemble not in ("nvt", "nve"):
        raise ValueError(f"unknown ensemble {config.ensemble!r}; choose nvt or nve")
    system, top, positions = system_from_frame(frame, model_file, allow_non_periodic)
    dt = config.timestep_fs * u.femtoseconds
    if config.ensemble == "nvt":
        integrator = openmm.LangevinMiddleIntegrator(config.temperature * u.kelvin, config.friction_per_ps / u.picosecond, dt)
        integrator.setRandomNumberSeed(config.seed)
    else:
        integrator = openmm.VerletIntegrator(dt)
    platform = openmm.Platform.getPlatformByName(config.platform)
    sim = app.Simulation(top, system, integrator, platform)
    sim.context.setPositions(positions)
    if minimize:
        sim.minimizeEnergy(maxIterations=500)
    sim.context.setVelocitiesToTemperature(config.temperature * u.kelvin, config.seed)
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    sim.reporters.append(app.DCDReporter(str(out_prefix.with_suffix(".dcd")), config.report_interval))
    sim.reporters.append(app.StateDataReporter(str(out_prefix.with_suffix(".csv")), config.report_interval, step=True,
                                               time=True, potentialEnergy=True, kineticEnergy=True, totalEnergy=True,
                                               temperature=True, speed=True))
    sim.step(1)  # first call builds the TorchScript graph: keep it out of the timing
    done, t0 = 1, time.perf_counter()
    chunk = max(1, config.report_interval)
    while done < config.steps:
        n = min(chunk, config.steps - done)
        sim.step(n)
        done += n
        if progress is not None:
            progress(n)
    elapsed = time.perf_counter() - t0
    timed = max(config.steps - 1, 1)
    state = sim.context.getState(getEnergy=True)
    return {
        "steps": config.steps,
        "ms_per_step": 1e3 * elapsed / timed,
        "ns_per_day": timed * config.timestep_fs * 1e-6 / (elapsed / 86400.0) if elapsed > 0 else float("nan"),
        "potential_energy_kj_mol": state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole),
        "kinetic_energy_kj_mol": state.getKineticEnergy().value_in_unit(u.kilojoule_per_mole),
        "trajectory": str(out_prefix.with_suffix(".dcd")),
        "thermo": str(out_prefix.with_suffix(".csv")),
        "atoms": len(frame),
        "platform": config.platform,
    }
