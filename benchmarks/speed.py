"""MD speed of maskpot exports in OpenMM and LAMMPS against the model-only bound and classical TIP3P water.

Usage (repository root, venv active, LD_LIBRARY_PATH=$VIRTUAL_ENV/lib):

    python benchmarks/speed.py                      # default plan (see below), results in benchmarks/results/
    python benchmarks/speed.py --quick              # seconds-scale check that every row runs

Structures: liquid-density water boxes (29.9 A^3 per molecule), flexible-TIP3P minimised and briefly equilibrated
(maskpot.data.tip3p). Every MD row uses a 0.5 fs step so ns/day compare, except rigid TIP3P (2 fs, its own ns/day).

Rows per (size, backbone, dtype):
  model-only   the exported TorchScript module (ASE target) called from PyTorch on the static structure:
               neighbour search + energy + forces per call; the bound an engine can reach.
  eager        the same Potential not scripted (eager PyTorch), same work.
  openmm       export --target openmm in an OpenMM CPU Context (TorchForce), Langevin NVT 300 K.
  lammps-Nr    export --target lammps in lmp (pair_style maskpot plugin) on N MPI ranks, NVT 300 K; ms/step from
               LAMMPS' "Loop time" of a production run after a warm-up run.
Rows per size: tip3p-flex (flexible TIP3P, PME, 0.5 fs) and tip3p-rigid (SETTLE, 2 fs) in OpenMM CPU.

Models: by default a default-size ModelConfig per backbone with RANDOM weights; speed does not depend on the weight
values, only on architecture, dtype and the structure. The random model's energy scale is set small (0.02 eV) so
its random forces barely perturb thermal motion (a water-sized scale of random forces would tear the box apart and
change neighbour counts during the run); atoms move thermally, so neighbour lists are rebuilt as in real MD.
``--checkpoint painn=path.ckpt`` uses a trained model instead.

Default plan: every backbone x dtype at --variant-size (258 waters) plus the size scan (--sizes) for painn
float32; --full-matrix runs every backbone x dtype at every size. Threads: every process uses --threads torch/OpenMM
threads (default 1); the LAMMPS N-rank row uses N such processes, so "2 ranks / 1 rank" is the strong-scaling
speedup from one core to two.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402  (import torch before openmm: the Torch plugin needs torch's libraries)

from benchmarks.common import (command_line, csv_list, fmt, machine_description, machine_markdown,  # noqa: E402
                               markdown_table, one_line, save_figure, save_json, atomic_write_text, timed_calls)

VOLUME_PER_WATER = 29.9  # A^3, liquid water at 300 K
TIMESTEP_FS = 0.5
RIGID_TIMESTEP_FS = 2.0
BOUND_TARGET = 0.95  # each engine >= 0.95 of the model-only bound
RANK_TARGET = 1.7  # 2 ranks >= 1.7 x one rank ...
RANK_TARGET_WATERS = 4096  # ... at this size
MODEL_ENGINES = ("model-only", "eager", "openmm", "lammps")
ALL_ENGINES = MODEL_ENGINES + ("tip3p",)
ROW_ORDER = ("tip3p-flex", "tip3p-rigid") + MODEL_ENGINES


@dataclass
class Row:
    waters: int
    atoms: int
    engine: str
    backbone: str = "-"
    dtype: str = "-"
    ranks: int = 1
    timestep_fs: float = TIMESTEP_FS
    times_ms: list = field(default_factory=list)  # ms/step of every repeat
    error: str | None = None
    extra: dict = field(default_factory=dict)  # ghost estimates, neighbour-search share, ...
    ratio_bound: float | None = None
    ratio_tip3p: float | None = None
    ratio_ranks: float | None = None
    target: str = "-"
    note: str = ""

    @property
    def ms(self) -> float:
        return float(np.median(self.times_ms)) if self.times_ms and self.error is None else float("nan")

    @property
    def ns_day(self) -> float:
        return self.timestep_fs * 1e-6 * 86400e3 / self.ms

    @property
    def us_atom_step(self) -> float:
        return 1e3 * self.ms / self.atoms

    @property
    def label(self) -> str:
        return self.engine if self.backbone == "-" else f"{self.backbone} {self.dtype} {self.engine}"


# ---- structures and models ------------------------------------------------------------------------------------

def water_box(waters: int, seed: int = 0):
    """A liquid-density water Frame: random placement, flexible-TIP3P minimisation and 100 fs of NVT."""
    from maskpot.data.tip3p import generate_tip3p

    box = (waters * VOLUME_PER_WATER) ** (1.0 / 3.0)
    return generate_tip3p(waters, box, n_frames=1, interval=1, equilibration_steps=200, seed=seed)[0]


def model_config(backbone: str, dtype: str, quick: bool):
    from maskpot.models import ModelConfig

    if quick:  # small model so the quick check finishes in seconds
        return ModelConfig(backbone=backbone, dtype=dtype, hidden=16, layers=2, cutoff=4.0, num_rbf=8)
    return ModelConfig(backbone=backbone, dtype=dtype)


def random_checkpoint(path: Path, backbone: str, dtype: str, quick: bool) -> Path:
    """A finetuned-kind checkpoint with random weights and water-like per-species energy shifts."""
    from maskpot.models import build_potential
    from maskpot.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = model_config(backbone, dtype, quick)
    potential = build_potential(config)
    potential.energy_shift.copy_(torch.tensor([-18.9, -430.0], dtype=potential.energy_shift.dtype))  # H, O eV/atom
    potential.energy_scale.fill_(0.02)  # small random forces: see the module docstring
    save_checkpoint(path, potential, config, kind="finetuned", normalization={"shift": [-18.9, -430.0], "scale": 0.02},
                    data_summary={"periodic": True}, metrics={})
    return path


def exports(checkpoint: Path, dtype: str, folder: Path) -> dict[str, Path]:
    from maskpot.export import export_checkpoint

    return {t: export_checkpoint(checkpoint, t, folder / f"model-{t}.pt", dtype=dtype) for t in ("ase", "openmm", "lammps")}


# ---- timing of each row ---------------------------------------------------------------------------------------

def model_only(frame, files, steps, repeats) -> tuple[list[float], dict]:
    """The exported module (ASE target) called directly, and its neighbour search alone (share of the step)."""
    from maskpot.models.neighbors import neighbor_pairs

    module = torch.jit.load(str(files["ase"]))
    pos = torch.tensor(frame.positions, dtype=torch.float64)
    numbers = torch.tensor(frame.numbers, dtype=torch.long)
    cell = torch.tensor(np.asarray(frame.cell), dtype=torch.float64)
    pbc = torch.tensor([True, True, True])
    times = timed_calls(lambda: module(pos, numbers, cell, pbc), steps, repeats)
    search = torch.jit.script(neighbor_pairs)
    model_dtype = torch.float64 if module.dtype == "float64" else torch.float32  # the attribute of the export
    p, c = pos.to(model_dtype), cell.to(model_dtype)
    nbr = timed_calls(lambda: search(p, c, pbc, float(module.cutoff)), steps, repeats)
    edges = int(search(p, c, pbc, float(module.cutoff))[0].shape[1])
    return times, {"neighbour_ms": float(np.median(nbr)), "neighbour_share": float(np.median(nbr) / np.median(times)),
                   "edges": edges}


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


def openmm_model(frame, files, steps, repeats, threads) -> list[float]:
    import openmm
    from openmm import unit

    from maskpot.openmm.system import system_from_frame

    system, _, positions = system_from_frame(frame, str(files["openmm"]))
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
    """ms/step of the timed run of ``repeats`` separate ``maskpot md --engine lammps`` runs (NVT 300 K, each after
    a warm-up run; LAMMPS' "Loop time" of the timed run only), and the last run's timing breakdown (%)."""
    from maskpot.lammps.md import run_lammps_md

    times, log = [], ""
    for k in range(repeats):
        result = run_lammps_md(files["lammps"], frame, steps=steps, timestep_fs=TIMESTEP_FS, report_interval=steps,
                               out_prefix=scratch / f"md-{ranks}", nprocs=ranks, seed=k,
                               warmup_steps=max(5, steps // 5), threads=threads)
        times.append(result["ms_per_step"])
        log = Path(result["log"]).read_text()
    return times, lammps_breakdown(log)


TIMING_LINE = re.compile(r"^(Pair|Neigh|Comm|Modify|Output|Other)\s*\|.*\|\s*([0-9.]+)\s*$", re.M)


def lammps_breakdown(log: str) -> dict:
    """LAMMPS' MPI task timing breakdown of the last run: {section: % of the loop time}."""
    return {name: float(pct) for name, pct in TIMING_LINE.findall(log.split("Loop time of")[-1])}


# ---- ratios, targets and output -------------------------------------------------------------------------------

def assess(rows: list[Row]) -> None:
    """Ratios measured in this run, whether targets are met, and a short reason when not."""
    def find(waters, engine, backbone="-", dtype="-", ranks=1):
        for r in rows:
            if (r.waters, r.engine, r.backbone, r.dtype, r.ranks) == (waters, engine, backbone, dtype, ranks) and r.error is None:
                return r
        return None

    for r in rows:
        if r.error is not None:
            continue
        flex = find(r.waters, "tip3p-flex")
        if r.backbone != "-" and flex is not None:
            r.ratio_tip3p = flex.ms / r.ms
        bound = find(r.waters, "model-only", r.backbone, r.dtype)
        if r.engine == "model-only":
            r.note = f"neighbour search {100 * r.extra['neighbour_share']:.0f}% of the step ({r.extra['edges']} edges)"
        if r.engine in ("openmm", "lammps") and bound is not None:
            r.ratio_bound = bound.ms / r.ms
        if r.engine == "openmm" and r.ratio_bound is not None:
            ok = r.ratio_bound >= BOUND_TARGET
            r.target = "met" if ok else "not met"
            if not ok:
                r.note = (f"{r.ms - bound.ms:.2f} ms/step outside the model (integrator, TorchForce data copies); "
                          f"neighbour search {100 * bound.extra['neighbour_share']:.0f}% of the bound")
        if r.engine == "lammps":
            pair = r.extra.get("lammps_breakdown_pct", {}).get("Pair")
            one = find(r.waters, "lammps", r.backbone, r.dtype, 1)
            if r.ranks > 1 and one is not None:
                r.ratio_ranks = one.ms / r.ms
            if r.ranks == 1 and r.ratio_bound is not None:
                ok = r.ratio_bound >= BOUND_TARGET
                r.target = "met" if ok else "not met"
                if not ok:
                    r.note = (f"{r.ms - bound.ms:.2f} ms/step more than the bound; pair style (graph building, "
                              f"model call, data copies) {pair:.0f}% of the step" if pair is not None else
                              f"{r.ms - bound.ms:.2f} ms/step more than the bound")
            elif r.ranks > 1 and r.ratio_ranks is not None:
                shares = r.extra.get("lammps_breakdown_pct", {})
                r.note = (f"node states exchanged between layers: each rank's network runs on its own atoms; "
                          f"Pair {shares.get('Pair', float('nan')):.0f}% (incl. the exchanges), "
                          f"Comm {shares.get('Comm', float('nan')):.0f}% of the step")
                if r.waters != RANK_TARGET_WATERS:
                    r.target = f"n/a (target at {RANK_TARGET_WATERS} waters)"
                else:
                    ok = r.ratio_ranks >= RANK_TARGET
                    r.target = "met" if ok else "not met"


HEADER = ["waters", "atoms", "model", "engine", "ns/day", "ms/step", "us/atom-step", "engine/bound",
          "maskpot/TIP3P-flex", "2 ranks/1 rank", "target", "note"]


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        engine = f"lammps {r.ranks} rank{'s' if r.ranks > 1 else ''}" if r.engine == "lammps" else r.engine
        if r.engine == "tip3p-rigid":
            engine += f" ({RIGID_TIMESTEP_FS:g} fs)"
        model = "-" if r.backbone == "-" else f"{r.backbone} {r.dtype}"
        if r.error is not None:
            out.append([r.waters, r.atoms, model, engine] + ["-"] * 7 + [f"failed: {r.error}"])
            continue
        out.append([r.waters, r.atoms, model, engine, fmt(r.ns_day), fmt(r.ms), fmt(r.us_atom_step),
                    fmt(r.ratio_bound), fmt(r.ratio_tip3p), fmt(r.ratio_ranks), r.target, r.note])
    return out


def plot_nsday(rows: list[Row], waters: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [r for r in rows if r.waters == waters and r.error is None and r.engine != "eager"]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(chosen) + 1.5))
    labels = [r.label + (f" {r.ranks}r" if r.engine == "lammps" else "") for r in chosen]
    colors = ["tab:gray" if r.backbone == "-" else "tab:blue" for r in chosen]
    ax.barh(range(len(chosen)), [r.ns_day for r in chosen], color=colors)
    ax.set_yticks(range(len(chosen)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ns/day")
    ax.set_title(f"{waters} waters ({3 * waters} atoms); TIP3P rigid at 2 fs, all others 0.5 fs")
    save_figure(fig, path)


def plot_scaling(rows: list[Row], backbone: str, dtype: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    series: dict[str, list[Row]] = {}
    for r in rows:
        if r.error is None and (r.backbone, r.dtype) in ((backbone, dtype), ("-", "-")):
            key = r.engine + (f" {r.ranks} rank(s)" if r.engine == "lammps" else "")
            series.setdefault(key, []).append(r)
    for key, rs in series.items():
        rs = sorted(rs, key=lambda r: r.atoms)
        ax.plot([r.atoms for r in rs], [r.ms for r in rs], marker="o", label=key)
    ref = sorted(series.get("model-only", []), key=lambda r: r.atoms)
    if ref:
        n = np.array([ref[0].atoms, max(r.atoms for rs in series.values() for r in rs)])
        ax.plot(n, ref[0].ms * n / n[0], "k--", lw=1, label="linear scaling")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms")
    ax.set_ylabel("ms/step")
    ax.set_title(f"{backbone} {dtype}")
    ax.legend(fontsize=7)
    save_figure(fig, path)


# ---- driver ---------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="27 and 64 waters, painn float32 only, a small model (16 features, 2 layers, 4 A), "
                         "10 steps, 1 repeat: checks that every row runs")
    ap.add_argument("--sizes", default="64,258,1024,4096", help="water molecules (size scan)")
    ap.add_argument("--variant-size", type=int, default=258, help="size at which all backbones x dtypes run")
    ap.add_argument("--backbones", default="painn,egnn,gns")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--scan", default="painn,float32", help="backbone,dtype of the size scan")
    ap.add_argument("--full-matrix", action="store_true", help="every backbone x dtype at every size")
    ap.add_argument("--engines", default=",".join(ALL_ENGINES), help="subset of " + ",".join(ALL_ENGINES))
    ap.add_argument("--steps", type=int, default=None, help="timed steps (calls) per repeat (default: --atom-steps / atoms evaluated, clipped to 10..200)")
    ap.add_argument("--atom-steps", type=float, default=1e5, help="work per timed repeat, in atom-steps")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ranks", default="1,2", help="LAMMPS MPI ranks")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMM threads per process")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="BACKBONE=PATH",
                    help="use a finetuned checkpoint for that backbone instead of random weights")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.variant_size, args.backbones, args.dtypes = "27,64", 64, "painn", "float32"
        args.steps, args.repeats = args.steps or 10, 1
    return args


def plan(args) -> list[tuple[int, str, str]]:
    sizes, backbones, dtypes = csv_list(args.sizes, int), csv_list(args.backbones), csv_list(args.dtypes)
    if args.full_matrix:
        return [(s, b, d) for s in sizes for b in backbones for d in dtypes]
    scan_b, scan_d = csv_list(args.scan)
    combos = [(args.variant_size, b, d) for b in backbones for d in dtypes]
    combos += [(s, scan_b, scan_d) for s in sizes if (s, scan_b, scan_d) not in combos]
    return sorted(combos, key=lambda c: (c[0], c[1], c[2]))


def main(argv=None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    engines = csv_list(args.engines)
    unknown = set(engines) - set(ALL_ENGINES)
    if unknown:
        raise SystemExit(f"unknown engine(s) {', '.join(sorted(unknown))}; choose from {', '.join(ALL_ENGINES)}")
    ranks = csv_list(args.ranks, int)
    given = dict(item.split("=", 1) for item in args.checkpoint)
    combos = plan(args)
    sizes = sorted({c[0] for c in combos})
    console = Console(stderr=True)
    rows: list[Row] = []
    started = time.perf_counter()

    def steps_for(atoms):  # about the same work per row: --atom-steps, between 10 and 200 steps
        return args.steps or int(np.clip(args.atom_steps / atoms, 10, 200))

    def run(row: Row, fn):
        try:
            row.times_ms = fn()
        except Exception as exc:  # every failure becomes a table row, never a silent skip
            row.error = one_line(exc)
            console.print(f"[red]{row.label} {row.waters} waters failed: {row.error}")
        rows.append(row)

    n_tasks = len(sizes) * (2 if "tip3p" in engines else 0) + len(combos) * sum(
        (len(ranks) if e == "lammps" else 1) for e in engines if e != "tip3p")
    with tempfile.TemporaryDirectory() as scratch_dir, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console) as bar:
        task = bar.add_task("speed", total=n_tasks)
        scratch = Path(scratch_dir)
        frames = {}
        for waters in sizes:
            bar.update(task, description=f"water box {waters}")
            frames[waters] = water_box(waters)
            if "tip3p" in engines:
                n_atoms, steps = 3 * waters, steps_for(3 * waters)
                for name, rigid in (("tip3p-flex", False), ("tip3p-rigid", True)):
                    bar.update(task, description=f"{waters} waters {name}")
                    run(Row(waters, n_atoms, name, timestep_fs=RIGID_TIMESTEP_FS if rigid else TIMESTEP_FS),
                        lambda: tip3p(frames[waters], rigid, steps, args.repeats, args.threads))
                    bar.advance(task)
        model_files: dict = {}
        for waters, backbone, dtype in combos:
            frame, n_atoms = frames[waters], 3 * waters
            steps = steps_for(n_atoms)
            key = (backbone, dtype)
            if key not in model_files:
                folder = scratch / f"{backbone}-{dtype}"
                folder.mkdir()
                try:
                    ckpt = Path(given[backbone]) if backbone in given else random_checkpoint(
                        folder / "model.ckpt", backbone, dtype, args.quick)
                    model_files[key] = (ckpt, exports(ckpt, dtype, folder))
                except Exception as exc:
                    model_files[key] = one_line(exc)
            setup = model_files[key]
            for engine in [e for e in engines if e != "tip3p"]:
                for nr in (ranks if engine == "lammps" else [1]):
                    row = Row(waters, n_atoms, engine, backbone, dtype, ranks=nr)
                    bar.update(task, description=f"{waters} waters {row.label}" + (f" {nr} rank(s)" if engine == "lammps" else ""))
                    if isinstance(setup, str):
                        row.error = f"model setup: {setup}"
                        rows.append(row)
                    elif engine == "model-only":
                        def fn(row=row):
                            times, extra = model_only(frame, setup[1], steps, args.repeats)
                            row.extra.update(extra)
                            return times
                        run(row, fn)
                    elif engine == "eager":
                        run(row, lambda: eager(frame, setup[0], steps, args.repeats))
                    elif engine == "openmm":
                        run(row, lambda: openmm_model(frame, setup[1], steps, args.repeats, args.threads))
                    else:
                        lsteps = steps_for(n_atoms / nr)  # each rank evaluates its own atoms

                        def fn(row=row, nr=nr, lsteps=lsteps):
                            times, breakdown = lammps_row(frame, setup[1], lsteps, args.repeats, nr, args.threads, scratch)
                            row.extra["lammps_breakdown_pct"] = breakdown
                            return times
                        run(row, fn)
                    bar.advance(task)

    assess(rows)
    write_outputs(rows, args, out, combos, time.perf_counter() - started)
    console.print(f"[green]wrote {out / 'speed.md'} ({time.perf_counter() - started:.0f} s)")
    return 0


def write_outputs(rows, args, out: Path, combos, seconds: float) -> None:
    machine = machine_description(args.threads)
    command = command_line()
    scan_b, scan_d = csv_list(args.scan)
    ranked = sorted(rows, key=lambda r: (r.waters, r.backbone != "-", r.backbone, r.dtype, ROW_ORDER.index(r.engine),
                                         r.ranks))
    text = ["# maskpot MD speed\n",
            "Generated by `benchmarks/speed.py`" + (" in --quick mode (a functional check, not a measurement)" if args.quick else "")
            + f" in {seconds:.0f} s. Medians of {args.repeats} repeat(s). All MD rows use a {TIMESTEP_FS} fs step "
            f"(rigid TIP3P: {RIGID_TIMESTEP_FS} fs) so ns/day compare. Models have random weights unless a checkpoint "
            "was given: speed does not depend on the weight values.\n",
            "## Machine\n", machine_markdown(machine, command),
            "\n## Results\n",
            "engine/bound = model-only ms/step / engine ms/step (target >= 0.95); maskpot/TIP3P-flex = ns/day ratio to "
            "flexible TIP3P at the same size and step; 2 ranks/1 rank = LAMMPS speedup (target >= 1.7 at "
            f"{RANK_TARGET_WATERS} waters); on several ranks pair_maskpot exchanges the node states of ghost atoms "
            "between layers (`ghosts exchange`, the default), so each rank's network runs on its own atoms. LAMMPS "
            "rows use "
            f"{args.threads} thread(s) per rank.\n",
            markdown_table(HEADER, table_rows(ranked))]
    atomic_write_text(out / "speed.md", "\n".join(text))
    save_json(out / "speed.json", {
        "machine": machine, "command": command, "options": vars(args), "seconds": seconds,
        "rows": [dict(asdict(r), label=r.label, ms_per_step=r.ms, ns_per_day=r.ns_day,
                      us_per_atom_step=r.us_atom_step) for r in ranked]})
    variant = args.variant_size if any(c[0] == args.variant_size for c in combos) else combos[0][0]
    plot_nsday(ranked, variant, out / "speed_nsday.png")
    plot_scaling(ranked, scan_b, scan_d, out / "speed_scaling.png")


if __name__ == "__main__":
    sys.exit(main())
