"""Reference water data from classical MD: flexible TIP3P in OpenMM (PME, Langevin thermostat).

The masked-pretraining paper pretrains on TIP3P water (258 molecules in a 20 Angstrom cubic box). OpenMM's
``amber14/tip3p.xml`` carries the TIP3P bond and angle terms; creating the system with ``rigidWater=False`` and no
constraints keeps them, so the O-H stretch and H-O-H bend forces are present in the labels.

Units at this boundary: OpenMM works in nm, kJ/mol, kJ/mol/nm; frames are returned in Angstrom, eV, eV/Angstrom
(constants from :mod:`maskpot.data.units`). Atoms are ordered O, H, H per molecule.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from maskpot.data.frame import Frame
from maskpot.data.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

__all__ = ["generate_tip3p", "water_box_positions", "tip3p_system", "tip3p_energy_forces"]

FORCEFIELD_XML = "amber14/tip3p.xml"
_OH = 0.9572  # Angstrom, TIP3P O-H bond length
_HOH = np.deg2rad(104.52)  # TIP3P H-O-H angle
_KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM = 1.0 / (EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM)


def water_box_positions(n_molecules: int, box: float, rng: np.random.Generator) -> np.ndarray:
    """(3 n_molecules, 3) Angstrom: molecules on random sites of a cubic grid filling the box, random orientations.

    Written by hand because the alternative, ``Modeller.addSolvent``, fills the box to liquid density and cannot
    place a given number of molecules in a given box.
    """
    per_side = int(np.ceil(n_molecules ** (1.0 / 3.0)))
    spacing = box / per_side
    if spacing < 2.5:
        raise ValueError(f"{n_molecules} water molecules do not fit a {box} Angstrom box (grid spacing {spacing:.2f} A < 2.5 A)")
    grid = np.stack(np.meshgrid(*[np.arange(per_side)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    sites = (grid[rng.choice(len(grid), n_molecules, replace=False)] + 0.5) * spacing
    # molecule frame: O at the origin, H atoms in the xy plane
    local = np.array([[0.0, 0.0, 0.0],
                      [_OH, 0.0, 0.0],
                      [_OH * np.cos(_HOH), _OH * np.sin(_HOH), 0.0]])
    local -= local.mean(axis=0)
    q, r = np.linalg.qr(rng.standard_normal((n_molecules, 3, 3)))
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]  # uniform random orthogonal matrices
    q[np.linalg.det(q) < 0, :, 0] *= -1  # proper rotations only
    return (np.einsum("mij,aj->mai", q, local) + sites[:, None, :]).reshape(-1, 3)


def tip3p_system(n_molecules: int, box: float, cutoff: float | None = None, rigid: bool = False):
    """OpenMM (topology, system) for ``n_molecules`` flexible TIP3P waters in a cubic ``box`` (Angstrom).

    PME electrostatics with a real-space ``cutoff`` in Angstrom (default: min(9, 0.45 box), below half the box).
    ``rigid=True`` gives standard rigid TIP3P instead (SETTLE constraints, for 2 fs steps; used as a speed reference).
    """
    import openmm
    from openmm import app, unit

    cutoff = min(9.0, 0.45 * box) if cutoff is None else cutoff
    if cutoff >= 0.5 * box:
        raise ValueError(f"cutoff {cutoff} A must be below half the box ({box} A)")
    topology = app.Topology()
    chain = topology.addChain()
    oxygen, hydrogen = app.Element.getBySymbol("O"), app.Element.getBySymbol("H")
    for _ in range(n_molecules):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", oxygen, residue)
        h1 = topology.addAtom("H1", hydrogen, residue)
        h2 = topology.addAtom("H2", hydrogen, residue)
        topology.addBond(o, h1)
        topology.addBond(o, h2)
    side = box / NM_TO_ANGSTROM
    topology.setPeriodicBoxVectors([openmm.Vec3(side, 0, 0), openmm.Vec3(0, side, 0), openmm.Vec3(0, 0, side)])
    forcefield = app.ForceField(FORCEFIELD_XML)
    system = forcefield.createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff / NM_TO_ANGSTROM * unit.nanometer,
                                     constraints=None, rigidWater=bool(rigid))
    return topology, system


def _context(system, integrator, platform: str | None, single_thread: bool = False):
    import openmm

    if platform is None:
        names = [openmm.Platform.getPlatform(k).getName() for k in range(openmm.Platform.getNumPlatforms())]
        platform = "CPU" if "CPU" in names else "Reference"
    # CPU sums forces in thread order unless told otherwise; deterministic forces make a seed reproduce a run
    properties = {"DeterministicForces": "true"} if platform == "CPU" else {}
    if single_thread and platform == "CPU":
        properties["Threads"] = "1"
    return openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties)


def _frame_from_state(state, numbers: np.ndarray, source: str) -> Frame:
    from openmm import unit

    cell = np.array(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)) * NM_TO_ANGSTROM
    return Frame(positions=np.array(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)) * NM_TO_ANGSTROM,
                 numbers=numbers, cell=cell, pbc=True,
                 energy=state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / EV_TO_KJ_PER_MOL,
                 forces=np.array(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
                 * _KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM,
                 source=source)


def generate_tip3p(n_molecules: int = 258, box: float = 20.0, temperature: float = 300.0, n_frames: int = 100,
                   interval: int = 50, timestep: float = 0.5, seed: int = 0, equilibration_steps: int = 2000,
                   friction: float = 1.0, platform: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[Frame]:
    """Run flexible-TIP3P Langevin MD and return ``n_frames`` labelled frames, one every ``interval`` steps.

    Args:
        n_molecules: water molecules; box: cubic box edge in Angstrom; temperature: K.
        interval: MD steps between saved frames; timestep: fs (0.5 fs resolves the flexible O-H stretch).
        seed: seeds placement, orientations, initial velocities and the Langevin noise (same seed, platform and
            thread count -> the same frames up to rounding; multithreaded CPU runs can differ in the last digits,
            which grows over long runs; use platform="Reference" for bitwise repeats). equilibration_steps: steps after energy minimisation before the first frame.
        friction: Langevin friction in 1/ps. platform: OpenMM platform name (default CPU, else Reference).
        progress: called as ``progress(steps_done, steps_total)`` after every chunk of steps.

    Returns frames with positions in Angstrom (molecules wrapped into the box), energies in eV, forces in eV/A.
    """
    import openmm
    from openmm import unit

    if n_molecules < 1 or n_frames < 1 or interval < 1 or equilibration_steps < 0:
        raise ValueError("n_molecules, n_frames and interval must be positive and equilibration_steps >= 0")
    rng = np.random.default_rng(seed)
    _, system = tip3p_system(n_molecules, box)
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, friction / unit.picosecond,
                                                 timestep * unit.femtosecond)
    integrator.setRandomNumberSeed(int(rng.integers(1, 2**31 - 1)))
    # minimise in a single-threaded context: with several threads the CPU platform's energies (used by the
    # minimiser's line search) are summed in thread order, and the minimum it stops at varies run to run
    minimizer = _context(system, openmm.VerletIntegrator(0.001), platform, single_thread=True)
    minimizer.setPositions(water_box_positions(n_molecules, box, rng) / NM_TO_ANGSTROM)
    openmm.LocalEnergyMinimizer.minimize(minimizer, 10.0, 500)
    context = _context(system, integrator, platform)
    context.setPositions(minimizer.getState(getPositions=True).getPositions())
    del minimizer
    context.setVelocitiesToTemperature(temperature * unit.kelvin, int(rng.integers(1, 2**31 - 1)))

    numbers = np.tile([8, 1, 1], n_molecules)
    total = equilibration_steps + n_frames * interval
    done = 0
    chunk = max(1, min(interval, 500))
    while done < equilibration_steps:
        step = min(chunk, equilibration_steps - done)
        integrator.step(step)
        done += step
        if progress:
            progress(done, total)
    frames = []
    for k in range(n_frames):
        integrator.step(interval)
        done += interval
        state = context.getState(getPositions=True, getEnergy=True, getForces=True, enforcePeriodicBox=True)
        frames.append(_frame_from_state(state, numbers, f"tip3p#{k}"))
        if progress:
            progress(done, total)
    return frames


def tip3p_evaluator(frame: Frame, platform: str = "Reference"):
    """A function ``positions (N,3) A -> (energy eV, forces (N,3) eV/A)`` in flexible TIP3P for the atoms and cubic
    cell of ``frame`` (ordered O, H, H per molecule): one OpenMM Context made once, for many evaluations.

    The same force field as :func:`generate_tip3p`; used to check labels and as a classical reference.
    """
    import openmm

    if frame.cell is None or not np.allclose(frame.cell, np.diag(np.diag(frame.cell))) \
            or not np.allclose(np.diag(frame.cell), frame.cell[0, 0]):
        raise ValueError(f"{frame.source or 'frame'}: TIP3P reference needs a cubic periodic cell")
    if len(frame) % 3 or not np.array_equal(frame.numbers, np.tile([8, 1, 1], len(frame) // 3)):
        raise ValueError(f"{frame.source or 'frame'}: TIP3P reference needs atoms ordered O, H, H per molecule")
    _, system = tip3p_system(len(frame) // 3, float(frame.cell[0, 0]))
    context = _context(system, openmm.VerletIntegrator(1e-3), platform)

    def evaluate(positions: np.ndarray) -> tuple[float, np.ndarray]:
        context.setPositions(np.asarray(positions) / NM_TO_ANGSTROM)
        result = _frame_from_state(context.getState(getPositions=True, getEnergy=True, getForces=True),
                                   frame.numbers, frame.source)
        return result.energy, result.forces

    return evaluate


def tip3p_energy_forces(frame: Frame, platform: str = "Reference") -> tuple[float, np.ndarray]:
    """Flexible-TIP3P energy (eV) and forces (eV/A) of a water frame ordered O, H, H with a cubic cell
    (see :func:`tip3p_evaluator`)."""
    return tip3p_evaluator(frame, platform)(frame.positions)
