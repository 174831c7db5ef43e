"""What the two MD runners (``maskpot.openmm.md``, ``maskpot.lammps.md``) share: the ensembles, each with one
meaning in every engine. Units: fs, K, ps.

- ``nve``: velocity Verlet, no thermostat.
- ``nvt-langevin``: Langevin thermostat with friction ``LANGEVIN_FRICTION_PER_PS`` (OpenMM
  ``LangevinMiddleIntegrator``; LAMMPS ``fix langevin`` with damping 1/friction and ``fix nve``).
- ``nvt-nose-hoover``: Nose-Hoover chain of 3 with time constant ``NOSE_HOOVER_DAMP_STEPS`` time steps
  (OpenMM ``NoseHooverIntegrator`` with collision frequency 1/time constant; LAMMPS ``fix nvt``).

A bare ``nvt`` is refused: the two thermostats sample the same ensemble but give different dynamics.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGEVIN_FRICTION_PER_PS = 1.0
NOSE_HOOVER_DAMP_STEPS = 100  # thermostat time constant in time steps (LAMMPS' usual choice)

ENSEMBLES = {
    "nvt-langevin": f"Langevin thermostat, friction {LANGEVIN_FRICTION_PER_PS:g}/ps",
    "nvt-nose-hoover": f"Nose-Hoover thermostat, time constant {NOSE_HOOVER_DAMP_STEPS} steps",
    "nve": "velocity Verlet, no thermostat",
}
DEFAULT_ENSEMBLE = "nvt-langevin"


def check_ensemble(name: str) -> str:
    """``name`` if it is one of ``ENSEMBLES``; a one-line ValueError otherwise."""
    if name == "nvt":
        raise ValueError("ensemble 'nvt' names no thermostat: choose nvt-langevin or nvt-nose-hoover "
                         "(both engines run both)")
    if name not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {name!r}; choose {', '.join(ENSEMBLES)}")
    return name


@dataclass
class MDConfig:
    """Options of an MD run in either engine, the one source of their defaults (``maskpot md`` reads them from here;
    ``platform`` is OpenMM's). ``ensemble``: one of ``ENSEMBLES``. Units: fs, K, 1/ps."""

    steps: int = 1000
    timestep_fs: float = 0.5
    temperature: float = 300.0
    ensemble: str = DEFAULT_ENSEMBLE
    friction_per_ps: float = LANGEVIN_FRICTION_PER_PS
    report_interval: int = 10
    platform: str = "CPU"
    seed: int = 0
