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
