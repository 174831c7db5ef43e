"""``maskpot md --engine openmm``: MD with an exported model, trajectory + thermo CSV, ns/day."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from maskpot.data.frame import Frame
from maskpot.md import NOSE_HOOVER_DAMP_STEPS, MDConfig, check_ensemble


def _integrator(config: MDConfig):
    import openmm
    import openmm.unit as u

    dt = config.timestep_fs * u.femtoseconds
    temperature = config.temperature * u.kelvin
    if config.ensemble == "nvt-langevin":
        integrator = openmm.LangevinMiddleIntegrator(temperature, config.friction_per_ps / u.picosecond, dt)
        integrator.setRandomNumberSeed(config.seed)
        return integrator
    if config.ensemble == "nvt-nose-hoover":
        return openmm.NoseHooverIntegrator(temperature, 1.0 / (NOSE_HOOVER_DAMP_STEPS * dt), dt)
    return openmm.VerletIntegrator(dt)


def run_openmm_md(model_file: str, frame: Frame, config: MDConfig, out_prefix: str | Path,
                  progress: Callable[[int], None] | None = None, allow_non_periodic: bool = False,
                  minimize: bool = False) -> dict:
    """Run MD and write ``<out_prefix>.dcd`` and ``<out_prefix>.csv``; returns timing and final energies.

    ``minimize`` relaxes the structure with the model (L-BFGS, at most 500 iterations) before MD. The outputs
    appear only when the run has finished (temporary files until then), and a second run with the same
    ``out_prefix`` stops at once (``maskpot.atomic.exclusive_output``). A model that fails during the run
    (e.g. a non-finite energy: ``maskpot.export.core.check_finite``) raises a one-line RuntimeError.
    """
    import openmm
    import openmm.app as app
    import openmm.unit as u

    from maskpot.atomic import atomic_outputs, exclusive_output
    from maskpot.errors import first_line
    from maskpot.openmm.system import system_from_frame

    check_ensemble(config.ensemble)
    out_prefix = Path(out_prefix)
    trajectory, thermo = out_prefix.with_suffix(".dcd"), out_prefix.with_suffix(".csv")
    system, top, positions = system_from_frame(frame, model_file, allow_non_periodic)
    platform = openmm.Platform.getPlatformByName(config.platform)
    with exclusive_output(out_prefix), atomic_outputs(trajectory, thermo) as (dcd_tmp, csv_tmp), \
            open(csv_tmp, "w") as csv_file:
        sim = app.Simulation(top, system, _integrator(config), platform)
        try:
            sim.context.setPositions(positions)
            if minimize:
                sim.minimizeEnergy(maxIterations=500)
            sim.context.setVelocitiesToTemperature(config.temperature * u.kelvin, config.seed)
            sim.reporters.append(app.DCDReporter(dcd_tmp, config.report_interval))
            sim.reporters.append(app.StateDataReporter(csv_file, config.report_interval, step=True, time=True,
                                                       potentialEnergy=True, kineticEnergy=True, totalEnergy=True,
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
            state = sim.context.getState(getEnergy=True)
        except openmm.OpenMMException as exc:  # the model's message, not the TorchScript traceback
            raise RuntimeError(f"OpenMM MD failed at step {sim.currentStep}: {first_line(exc)}") from None
    timed = max(config.steps - 1, 1)
    return {
        "steps": config.steps,
        "ms_per_step": 1e3 * elapsed / timed,
        "ns_per_day": timed * config.timestep_fs * 1e-6 / (elapsed / 86400.0) if elapsed > 0 else float("nan"),
        "potential_energy_kj_mol": state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole),
        "kinetic_energy_kj_mol": state.getKineticEnergy().value_in_unit(u.kilojoule_per_mole),
        "trajectory": str(trajectory),
        "thermo": str(thermo),
        "atoms": len(frame),
        "platform": config.platform,
    }
