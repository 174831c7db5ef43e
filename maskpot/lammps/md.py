"""``maskpot md --engine lammps``: MD with ``pair_style maskpot`` through ``lmp`` / ``mpirun -np N lmp``.

Writes next to ``out_prefix``: ``.data`` (the structure), ``.in`` (the deck, rerunnable by hand), ``.log``
(LAMMPS' output), ``.csv`` (thermo: step, time ps, K, eV, bar) and ``.lammpstrj`` (a LAMMPS custom dump with
element names, readable by ASE and OVITO). Units metal: Angstrom, eV, ps.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from maskpot.atomic import atomic_outputs, atomic_write, atomic_write_text, exclusive_output
from maskpot.data.frame import Frame
from maskpot.export.metadata import read_metadata
from maskpot.lammps.datafile import write_data
from maskpot.lammps.plugin import plugin_path
from maskpot.lammps.runner import run_lammps
from maskpot.md import LANGEVIN_FRICTION_PER_PS, NOSE_HOOVER_DAMP_STEPS, MDConfig, check_ensemble

# thermo_style keyword, the column LAMMPS prints for it, the CSV column (units metal)
THERMO = [("step", "Step", "step"), ("time", "Time", "time_ps"), ("temp", "Temp", "temperature_K"),
          ("pe", "PotEng", "potential_energy_eV"), ("ke", "KinEng", "kinetic_energy_eV"),
          ("etotal", "TotEng", "total_energy_eV"), ("press", "Press", "pressure_bar")]


def md_deck(data: Path, model: Path, plugin: Path, elements: list[str], steps: int, timestep_fs: float,
            temperature: float, ensemble: str, report_interval: int, dump: Path, seed: int,
            warmup_steps: int = 0) -> str:
    """The LAMMPS input: a warm-up run of ``warmup_steps`` (0: just ``run 0``; TorchScript's first calls optimise
    the graph, so benchmarks warm up longer), then the timed run."""
    dt_ps = timestep_fs * 1e-3
    if check_ensemble(ensemble) == "nvt-nose-hoover":
        integrate = f"fix integrate all nvt temp {temperature!r} {temperature!r} {NOSE_HOOVER_DAMP_STEPS * dt_ps!r}"
    elif ensemble == "nvt-langevin":
        integrate = (f"fix thermostat all langevin {temperature!r} {temperature!r} {1.0 / LANGEVIN_FRICTION_PER_PS!r} "
                     f"{seed + 2} zero yes\nfix integrate all nve")
    else:
        integrate = "fix integrate all nve"
    names = " ".join(elements)
    return f"""# maskpot md --engine lammps ({ensemble}, {temperature} K, {timestep_fs} fs, {steps} steps)
units           metal
atom_style      atomic
boundary        p p p
newton          on
read_data       {data}

plugin          load {plugin}
pair_style      maskpot
pair_coeff      * * {model} {names}

velocity        all create {temperature!r} {seed + 1} mom yes rot yes dist gaussian
{integrate}
timestep        {dt_ps!r}
thermo_style    custom {" ".join(keyword for keyword, _, _ in THERMO)}
thermo_modify   format float %.10g
thermo          {report_interval}
run             {warmup_steps}

dump            traj all custom {report_interval} {dump} id element x y z vx vy vz fx fy fz
dump_modify     traj element {names} sort id
run             {steps}
"""


def performance(log: str) -> tuple[float, float, int]:
    """(ns/day, ms/step, steps) of the last run in a LAMMPS log: its ``Performance:`` and ``Loop time`` lines
    (the loop only; setup is not included)."""
    loops = re.findall(r"Loop time of (\S+) on \d+ procs for (\d+) steps", log)
    perf = re.findall(r"Performance: (\S+) ns/day", log)
    if not loops or not perf:
        raise RuntimeError("LAMMPS printed no 'Loop time' / 'Performance:' line for the MD run")
    seconds, steps = float(loops[-1][0]), int(loops[-1][1])
    return float(perf[-1]), 1e3 * seconds / max(steps, 1), steps


def phase_timing(log: str) -> dict[int, dict]:
    """The plugin's per-phase wall seconds (printed by each rank at exit when MASKPOT_TIMING=1, see
    lammps/src/pair_maskpot.h): {rank: {"calls": compute calls, "edges": the last step's edges, "paired": how many
    of them lie in pairs, "seconds": {phase: seconds}}}; {} without them. mpirun may join the ranks' lines, so the
    pattern is not anchored to line starts."""
    found = {}
    pattern = r"maskpot timing rank (\d+) calls (\d+) edges (\d+) paired (\d+):((?: [a-z_]+ [0-9.]+)+)"
    for m in re.finditer(pattern, log):
        words = m.group(5).split()
        found[int(m.group(1))] = {"calls": int(m.group(2)), "edges": int(m.group(3)), "paired": int(m.group(4)),
                                  "seconds": {words[k]: float(words[k + 1]) for k in range(0, len(words), 2)}}
    return found


def write_thermo_csv(thermo: dict, path: Path) -> Path:
    """Thermo columns (LAMMPS names) -> CSV with unit-named columns; written atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([column for _, _, column in THERMO])
            for row in zip(*(thermo[printed] for _, printed, _ in THERMO)):
                writer.writerow([int(row[0])] + [repr(float(v)) for v in row[1:]])

    atomic_write(path, write)
    return path


def run_lammps_md(model_file: str | Path, frame: Frame, *, out_prefix: str | Path, steps: int = MDConfig.steps,
                  timestep_fs: float = MDConfig.timestep_fs, temperature: float = MDConfig.temperature,
                  ensemble: str = MDConfig.ensemble, report_interval: int = MDConfig.report_interval,
                  nprocs: int = 1, seed: int = MDConfig.seed, warmup_steps: int = 0,
                  threads: int | None = None) -> dict:
    """Run MD of the periodic ``frame`` with a model exported for LAMMPS; returns steps, ms_per_step, ns_per_day
    (from LAMMPS' ``Performance:`` line of the timed run), atoms, nprocs, final potential_energy_eV, and the
    paths of thermo (CSV), trajectory (dump), deck and log; ``timing``: :func:`phase_timing` of the run (empty
    unless MASKPOT_TIMING=1 is set).

    ``ensemble``: one of ``maskpot.md.ENSEMBLES`` (the same thermostats as in OpenMM); velocities drawn at
    ``temperature`` with the LAMMPS seed ``seed + 1`` (LAMMPS needs a positive seed; the Langevin thermostat
    uses ``seed + 2``). ``warmup_steps`` run untimed before the ``steps``; ``threads``: torch threads per rank
    (see run_lammps). One rank folds ghosts onto their owners, several exchange node states between layers (see
    pair_maskpot.h). The log, thermo and trajectory appear only when the run has finished, and a second run
    with the same ``out_prefix`` stops at once (``maskpot.atomic.exclusive_output``).
    """
    model_file = Path(model_file).resolve()
    meta = read_metadata(model_file)
    if meta["target"] != "lammps":
        raise ValueError(f"{model_file}: exported for {meta['target']}; re-export with --target lammps")
    check_ensemble(ensemble)
    if steps < 1 or report_interval < 1 or nprocs < 1 or warmup_steps < 0:
        raise ValueError(f"steps ({steps}), report_interval ({report_interval}) and nprocs ({nprocs}) must be >= 1, "
                         f"warmup_steps ({warmup_steps}) >= 0")
    if not timestep_fs > 0 or not temperature > 0:
        raise ValueError(f"timestep ({timestep_fs} fs) and temperature ({temperature} K) must be positive")
    plugin = plugin_path()
    elements = list(meta["species_symbols"])

    out_prefix = Path(out_prefix).resolve()
    paths = {ext: out_prefix.parent / (out_prefix.name + ext) for ext in (".data", ".in", ".log", ".csv", ".lammpstrj")}
    with exclusive_output(out_prefix), atomic_outputs(paths[".lammpstrj"], paths[".log"]) as (dump_tmp, log_tmp):
        data = write_data(frame, paths[".data"], elements)
        deck = md_deck(data, model_file, plugin, elements, steps, timestep_fs, temperature, ensemble,
                       report_interval, Path(dump_tmp), seed, warmup_steps)
        atomic_write_text(paths[".in"], deck)
        result = run_lammps(paths[".in"], nprocs=nprocs, cwd=out_prefix.parent, threads=threads)
        Path(log_tmp).write_text(result.log)
        ns_per_day, ms_per_step, done = performance(result.log)
        thermo = result.last
        write_thermo_csv(thermo, paths[".csv"])
    return {
        "steps": done,
        "ms_per_step": ms_per_step,
        "ns_per_day": ns_per_day,
        "atoms": len(frame),
        "nprocs": nprocs,
        "potential_energy_eV": float(thermo["PotEng"][-1]),
        "thermo": str(paths[".csv"]),
        "trajectory": str(paths[".lammpstrj"]),
        "deck": str(paths[".in"]),
        "log": str(paths[".log"]),
        "timing": phase_timing(result.log),
    }
