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
  openmm-python  the same file and Context with the model in OpenMM's PythonForce (maskpot.openmm backend "python").
  lammps-Nr    export --target lammps in lmp (pair_style maskpot plugin) on N MPI ranks, NVT 300 K; ms/step from
               LAMMPS' "Loop time" of a production run after a warm-up run.
  model-only-pt2, lammps-pt2   the same two rows with AOTInductor packages (--format aoti; LAMMPS on one rank),
               their repeats interleaved with the TorchScript file's so that ".pt2 / TorchScript" is measured side
               by side; for the size scan's model only (--aoti; compiling a package takes minutes).
Rows per size: tip3p-flex (flexible TIP3P, PME, 0.5 fs) and tip3p-rigid (SETTLE, 2 fs) in OpenMM CPU.
Every row of one box size is timed in --repeats rounds, one repeat of each row per round (each repeat builds its
OpenMM Context or runs its own lmp process): the ratios (engine / model-only bound, maskpot / TIP3P, 2 ranks / 1
rank) compare runs made side by side, never runs minutes apart.

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

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402  (import torch before openmm: the Torch plugin needs torch's libraries)

from benchmarks.common import argument_parser, begin, csv_list, finish, known  # noqa: E402
from maskpot.errors import first_line  # noqa: E402
from benchmarks.speed_floor import floor_us_per_atom_step, gemm_rate  # noqa: E402
from benchmarks.speed_engines import (RIGID_TIMESTEP_FS, TIMESTEP_FS, eager, lammps_package_row,  # noqa: E402
                                      lammps_row, model_only, model_only_package, openmm_model, tip3p)
from benchmarks.speed_report import MODEL_ENGINES, PACKAGE_ENGINES, Row, assess, write_outputs  # noqa: E402

VOLUME_PER_WATER = 29.9  # A^3, liquid water at 300 K
ALL_ENGINES = MODEL_ENGINES + ("tip3p",)


# ---- structures and models ------------------------------------------------------------------------------------

def water_box(waters: int, seed: int = 0):
    """A liquid-density water Frame: random placement, flexible-TIP3P minimisation and 100 fs of NVT."""
    from maskpot.data.tip3p import generate_tip3p

    box = (waters * VOLUME_PER_WATER) ** (1.0 / 3.0)
    return generate_tip3p(waters, box, n_frames=1, interval=1, equilibration_steps=200, seed=seed)[0]


def model_config(backbone: str, dtype: str, quick: bool):
    from maskpot.models import ModelConfig

    # random weights and no training data: a fixed avg_neighbors (the speed does not depend on it)
    if quick:  # small model so the quick check finishes in seconds
        return ModelConfig(backbone=backbone, dtype=dtype, hidden=16, layers=2, cutoff=4.0, num_rbf=8,
                           avg_neighbors=32.0)
    return ModelConfig(backbone=backbone, dtype=dtype, avg_neighbors=32.0)


def random_checkpoint(path: Path, backbone: str, dtype: str, quick: bool) -> Path:
    """A finetuned-kind checkpoint with random weights and water-like per-species energy shifts."""
    from maskpot.models import build_potential
    from maskpot.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = model_config(backbone, dtype, quick)
    potential = build_potential(config)
    potential.energy_shift.copy_(torch.tensor([-18.9, -430.0], dtype=potential.energy_shift.dtype))  # H, O eV/atom
    potential.output_scale.fill_(0.02)  # small random forces: see the module docstring
    save_checkpoint(path, potential, config, kind="finetuned", normalization={"shift": [-18.9, -430.0], "scale": 0.02},
                    data_summary={"periodic": True}, metrics={})
    return path


def exports(checkpoint: Path, dtype: str, folder: Path, packages: bool = False) -> dict[str, Path]:
    """TorchScript files per target (default kernels), a reference-kernel ASE file, and with ``packages`` the
    AOTInductor packages of the ase and lammps targets (keys "ase-aoti", "lammps-aoti")."""
    from maskpot.export import export_checkpoint

    files = {t: export_checkpoint(checkpoint, t, folder / f"model-{t}.pt", dtype=dtype) for t in ("ase", "openmm", "lammps")}
    for t in ("ase", "lammps") if packages else ():
        files[f"{t}-aoti"] = export_checkpoint(checkpoint, t, folder / f"model-{t}.pt2", dtype=dtype,
                                               export_format="aoti")
    # FLOPs are counted on the reference ops: the profiler sees no arithmetic inside a fused kernel
    files["ase-reference"] = export_checkpoint(checkpoint, "ase", folder / "model-ase-reference.pt", dtype=dtype,
                                               kernels="reference")
    return files


# ---- driver ---------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argument_parser(__doc__, quick="27 and 64 waters, painn float32 only, a small model (16 features, 2 layers, "
                                        "4 A), 10 steps, 1 repeat: checks that every row runs",
                         quick_values={"sizes": "27,64", "variant_size": 64, "backbones": "painn", "dtypes": "float32",
                                       "steps": 10, "repeats": 1})
    ap.add_argument("--sizes", default="64,258,512,1024,4096", help="water molecules (size scan)")
    ap.add_argument("--variant-size", type=int, default=258, help="size at which all backbones x dtypes run")
    ap.add_argument("--backbones", default="painn,egnn,gns")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--scan", default="painn,float32", help="backbone,dtype of the size scan")
    ap.add_argument("--full-matrix", action="store_true", help="every backbone x dtype at every size")
    ap.add_argument("--aoti", choices=("scan", "all", "none"), default=None,
                    help="models with .pt2 rows: the size scan's (default), all, none (default with --quick)")
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
    args.aoti = args.aoti or ("none" if args.quick else "scan")
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

    from maskpot.allocator import tune_allocator

    args, out, started = begin(parse_args(argv))
    tune_allocator()  # what every engine maskpot sets up does (the LAMMPS plugin in its own processes)
    engines = known(csv_list(args.engines), ALL_ENGINES, "engine")
    ranks = csv_list(args.ranks, int)
    given = dict(item.split("=", 1) for item in args.checkpoint)
    combos = plan(args)
    sizes = sorted({c[0] for c in combos})
    console = Console(stderr=True)
    rows: list[Row] = []

    def steps_for(atoms):  # about the same work per row: --atom-steps, between 10 and 200 steps
        return args.steps or int(np.clip(args.atom_steps / atoms, 10, 200))

    def measure(row: Row, fn) -> dict:
        """``fn() -> (ms per repeat, extra facts of the row)``: its times are added to the row's; returns the
        extra facts ({} after a failure)."""
        if row.error is not None:
            return {}
        try:
            times, extra = fn()
            row.times_ms += times
            return extra
        except Exception as exc:  # every failure becomes a table row, never a silent skip
            row.error = first_line(exc)
            console.print(f"[red]{row.label} {row.waters} waters failed: {row.error}")
            return {}

    scan = tuple(csv_list(args.scan))

    def engines_of(backbone: str, dtype: str) -> list[str]:
        packaged = args.aoti == "all" or (args.aoti == "scan" and (backbone, dtype) == scan)
        return [e for e in engines if e != "tip3p" and (packaged or e not in PACKAGE_ENGINES)]

    def engine_call(engine: str, frame, setup, steps: int, nr: int, scratch: Path):
        """One repeat of one row, ``() -> ([ms], extra)``, with ``steps`` steps."""
        ckpt, files = setup
        return {
            "model-only": lambda: model_only(frame, files, steps, 1),
            "model-only-pt2": lambda: model_only_package(frame, files, steps, 1),
            "eager": lambda: (eager(frame, ckpt, steps, 1), {}),
            "openmm": lambda: (openmm_model(frame, files, steps, 1, args.threads, "torch"), {}),
            "openmm-python": lambda: (openmm_model(frame, files, steps, 1, args.threads, "python"), {}),
            "lammps": lambda: lammps_row(frame, files, steps, 1, nr, args.threads, scratch),
            "lammps-pt2": lambda: lammps_package_row(frame, files, steps, 1, args.threads, scratch),
        }[engine]

    def interleaved_rows(calls: list, what: str) -> None:
        """``calls`` [(row, one-repeat fn)] measured in --repeats rounds, one repeat of every row per round, so
        that the ratios between rows (engine / model-only bound, maskpot / TIP3P) compare runs made side by
        side rather than minutes apart."""
        facts = [{} for _ in calls]  # per row, each extra fact of every round
        for k in range(args.repeats):
            for (row, fn), seen in zip(calls, facts):
                bar.update(task, description=f"{what}: {row.label}"
                           + (f" {row.ranks} rank(s)" if row.engine == "lammps" else "") + f", round {k + 1}")
                for key, value in measure(row, fn).items():
                    seen.setdefault(key, []).append(value)
                bar.advance(task)
        for (row, _), seen in zip(calls, facts):  # numbers: the median over rounds; anything else: the last
            row.extra.update({key: float(np.median(v)) if isinstance(v[-1], (int, float)) else v[-1]
                              for key, v in seen.items()})
        rows.extend(row for row, _ in calls)

    n_tasks = args.repeats * (len(sizes) * (2 if "tip3p" in engines else 0) + sum(
        (len(ranks) if e == "lammps" else 1) for _, b, d in combos for e in engines_of(b, d)))
    with tempfile.TemporaryDirectory() as scratch_dir, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console) as bar:
        task = bar.add_task("speed", total=n_tasks)
        scratch = Path(scratch_dir)
        model_files: dict = {}
        rates: dict[str, float] = {}  # GEMM FLOP/s per dtype, measured once in this run
        for waters in sizes:  # every row of one box size in one interleaved group
            bar.update(task, description=f"water box {waters}")
            frame, n_atoms = water_box(waters), 3 * waters
            calls = []
            if "tip3p" in engines:
                steps = steps_for(n_atoms)
                calls += [(Row(waters, n_atoms, name, timestep_fs=RIGID_TIMESTEP_FS if rigid else TIMESTEP_FS),
                           lambda rigid=rigid, steps=steps: (tip3p(frame, rigid, steps, 1, args.threads), {}))
                          for name, rigid in (("tip3p-flex", False), ("tip3p-rigid", True))]
            for _, backbone, dtype in (c for c in combos if c[0] == waters):
                key = (backbone, dtype)
                if key not in model_files:
                    folder = scratch / f"{backbone}-{dtype}"
                    folder.mkdir()
                    try:
                        ckpt = Path(given[backbone]) if backbone in given else random_checkpoint(
                            folder / "model.ckpt", backbone, dtype, args.quick)
                        packages = any(e in PACKAGE_ENGINES for e in engines_of(backbone, dtype))
                        bar.update(task, description=f"exporting {backbone} {dtype}" + (" (compiling .pt2 packages)"
                                                                                        if packages else ""))
                        model_files[key] = (ckpt, exports(ckpt, dtype, folder, packages))
                    except Exception as exc:
                        model_files[key] = first_line(exc)
                setup = model_files[key]
                floor = {}
                if not isinstance(setup, str):
                    try:
                        if dtype not in rates:
                            rates[dtype] = gemm_rate(dtype)
                        per_atom, floor_us = floor_us_per_atom_step(frame, setup[1]["ase-reference"], rates[dtype])
                        floor = {"flops_per_atom_step": per_atom, "gemm_flops_per_s": rates[dtype],
                                 "floor_us": floor_us}
                    except Exception as exc:  # the floor is extra information: a failure is reported, rows still run
                        console.print(f"[red]compute floor of {backbone} {dtype} at {waters} waters: {first_line(exc)}")
                for engine in engines_of(backbone, dtype):
                    for nr in (ranks if engine == "lammps" else [1]):
                        row = Row(waters, n_atoms, engine, backbone, dtype, ranks=nr, extra=dict(floor))
                        if isinstance(setup, str):
                            row.error = f"model setup: {setup}"
                            calls.append((row, None))
                        else:
                            calls.append((row, engine_call(engine, frame, setup, steps_for(n_atoms / nr), nr,
                                                           scratch)))
            interleaved_rows(calls, f"{waters} waters")

    assess(rows)
    write_outputs(rows, args, out, combos, time.perf_counter() - started)
    return finish(out / "speed.md", started, console.print)


if __name__ == "__main__":
    sys.exit(main())
