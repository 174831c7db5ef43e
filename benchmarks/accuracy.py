"""The first accuracy study (archived): finetuning from scratch vs from a masked- or denoising-pretrained
backbone, every run exactly 20 epochs of a cosine schedule, 3 seeds, 270 runs, made with the epoch loop of
commit 09b7776 (maskpot.train then trained in epochs). Its successor, with plateau budgets, the paper's
read-out and paired statistics, is benchmarks/pretraining.py. This script no longer trains: it rewrites the tables
from the stored records and runs the MD check of the best stored PaiNN of each dataset.

Usage (repository root, venv active):

    python benchmarks/accuracy.py --report            # tables and plots from the stored records
    python benchmarks/accuracy.py --backbones painn   # the MD check again (20 ps NVT in LAMMPS) from the stored models

Datasets: deepmd (../shared/data/water/deepmd_water: data_0..data_2 train, data_3 test) and tip3p (flexible
TIP3P made by maskpot.data.tip3p, 64 waters in a 12.42 A box; frames cached in <out>/accuracy_data/). MD
quality: NVT at 300 K in LAMMPS (export + run_lammps_md, 0.5 fs) for --md-ps; O-O and O-H g(r) against the
dataset's, molecules that dissociated and overlapping molecules, for the model as finetuned and with maskpot's
short-range repulsion. Outputs in --out: accuracy.md, accuracy.json, accuracy_force_mae.png,
learning_curves.png, rdf.png. Records under <out>/accuracy_runs/ (kept in git).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (before openmm: the Torch plugin needs torch's libraries)

from benchmarks.accuracy_md import TIMESTEP_FS, nvt_quality, oo_contacts, read_trajectory  # noqa: E402
from benchmarks.accuracy_report import INITS, write_outputs  # noqa: E402
from benchmarks.common import argument_parser, begin, csv_list, deepmd_water, finish, known, save_json  # noqa: E402
from maskpot.errors import first_line  # noqa: E402

ARCHIVED = "no stored record (this archived study no longer trains: see benchmarks/pretraining.py)"
REPULSION_MD = " + repulsion"  # MD rows of the best PaiNN with maskpot.models.repulsion added


# ---- data -----------------------------------------------------------------------------------------------------

def load_deepmd(quick: bool):
    train, test = deepmd_water()
    if quick:  # a spread-out subset: every 8th training frame, every 4th test frame
        train, test = train[::8], test[::4]
    return train, test


def load_tip3p(quick: bool, cache: Path):
    """Training frames from independent flexible-TIP3P runs and test frames from another seed (cached as extxyz)."""
    from maskpot.data import read, write_extxyz
    from maskpot.data.tip3p import generate_tip3p

    if quick:
        spec = dict(n_molecules=32, box=10.0, n_frames=12, interval=20, equilibration_steps=200)
        train_seeds, test_seed = (0, 1), 100
    else:  # 64 molecules at 1 g/cm3, as the DeePMD set: 4 x 75 training frames, 100 test frames
        spec = dict(n_molecules=64, box=12.42, n_frames=75, interval=50, equilibration_steps=2000)
        train_seeds, test_seed = (0, 1, 2, 3), 100
    tag = "-".join(f"{k[0]}{v}" for k, v in spec.items())

    def run(seed):
        path = cache / f"tip3p-{tag}-seed{seed}.extxyz"
        if path.is_file():
            return read(path)
        n = dict(spec, n_frames=100) if seed == test_seed and not quick else spec
        frames = generate_tip3p(seed=seed, platform="Reference", **n)
        write_extxyz(frames, path)
        return frames

    train = [f for s in train_seeds for f in run(s)]
    return train, run(test_seed)


# ---- records ------------------------------------------------------------------------------------------------

def budget(args) -> dict:
    """What made the archived runs comparable: a record is read only under the same budget (their loss weights
    were w_E 1, w_F 10)."""
    return {"epochs": args.epochs, "patience": args.patience, "pretrain_epochs": args.pretrain_epochs,
            "max_minutes": args.max_minutes, "quick": args.quick, "energy_weight": 1.0, "force_weight": 10.0}


def reusable(record_path: Path, args, keys: tuple[str, ...] | None = None) -> dict | None:
    """The JSON record at ``record_path`` if --resume and it was made under this budget (or under the same
    values of ``keys`` of it), else None."""
    if not (args.resume and record_path.is_file()):
        return None
    record = json.loads(record_path.read_text())
    made, now = record.get("budget") or {}, budget(args)
    same = all(made.get(k) == now[k] for k in keys) if keys else made == now
    return record if same else None


def run_name(init: str, size, seed) -> str:
    return f"{init}-n{size}-s{seed}"


def finished_run(folder: Path, name: str, args) -> dict | None:
    """The record of a finished run under this budget, with paths as seen from this --out (the record may come
    from another machine), or None."""
    record = reusable(folder / f"{name}.json", args)
    if record is None:
        return None
    return {**record, "checkpoint": str(folder / f"{name}.ckpt"), "log": str(folder / f"{name}.log.csv"),
            "reused": True}


def n_train(checkpoint: Path) -> int:
    """Training frames a finetuning run used (recorded in its checkpoint)."""
    from maskpot.train.checkpoint import load_checkpoint

    return int(load_checkpoint(checkpoint).data["n_train"])


# ---- MD quality -----------------------------------------------------------------------------------------------

def stored_md(folder: Path, args) -> dict | None:
    """The MD record (md.json) kept in a dataset's MD ``folder`` under this budget (by an earlier run or session),
    or None; completed by with_contacts."""
    return with_contacts(reusable(folder / "md.json", args), folder)


def stored_mds(runs: Path, datasets, args) -> dict:
    """The stored MD records of ``datasets``: {ds: plain model, ds + REPULSION_MD: with the repulsion}."""
    found = {}
    for ds in datasets:
        for key, folder in ((ds, "md"), (f"{ds}{REPULSION_MD}", "md-repulsion")):
            if (rec := stored_md(runs / ds / folder, args)) is not None:
                found[key] = rec
    return found


def with_contacts(record: dict | None, folder: Path) -> dict | None:
    """An MD record made before the overlap check (accuracy_md.oo_contacts) gains it from its trajectory where
    that is still on this machine (trajectories are not kept in git); saved back to md.json."""
    traj_path = folder / "md.lammpstrj"
    if record is None or "oo_min" in record or "error" in record or not traj_path.is_file():
        return record
    traj, numbers, cell = read_trajectory(traj_path)
    interval = record["steps"] // (len(traj) - 1)  # frames at steps 0, interval, ..., steps
    record = {**record, "report_interval": interval,
              **oo_contacts(traj, numbers, cell, interval * TIMESTEP_FS * 1e-3)}
    save_json(folder / "md.json", record)
    return record


def md_quality(record: dict, name: str, start, reference, folder: Path, args, repulsion_frames=None) -> dict:
    """benchmarks.accuracy_md.nvt_quality of the finetuned model ``name`` for --md-ps, kept in ``folder`` as
    md.json (with the model's checkpoint, model.ckpt); an MD of the same model, budget and length is reused. An MD
    that fails (LAMMPS stops, e.g. on lost atoms) is recorded with its error and reused the same way. With
    ``repulsion_frames`` the model gains maskpot's short-range repulsion from those frames first."""
    old = stored_md(folder, args)
    if old is not None and old.get("model") == name and old.get("ps_requested") == args.md_ps:
        return old
    if not Path(record["checkpoint"]).is_file():
        raise FileNotFoundError(f"checkpoint of {name} is not on this machine (finetuned elsewhere; only records "
                                "are kept): rerun that finetuning with --no-resume")
    try:
        out = nvt_quality(Path(record["checkpoint"]), start, reference, folder, args.md_ps, args.threads,
                          repulsion_frames)
    except Exception as exc:  # e.g. LAMMPS "Lost atoms" when molecules collapse: the failure is the result
        out = {"error": first_line(exc)}
    out.update(model=name, budget=budget(args), ps_requested=args.md_ps)
    save_json(folder / "md.json", out)
    return out


# ---- driver ---------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argument_parser(__doc__)
    ap.add_argument("--data", default="deepmd,tip3p")
    ap.add_argument("--backbones", default="painn,egnn,gns")
    ap.add_argument("--sizes", default="10,25,50,100,all", help="training frames per finetuning run ('all' = pool)")
    ap.add_argument("--seeds", default="0,1,2")
    # the archived budget (records are read only under it)
    ap.add_argument("--epochs", type=int, default=20, help="finetuning epochs of the records to read")
    ap.add_argument("--patience", type=int, default=20, help="early-stopping patience (epochs) of the records")
    ap.add_argument("--pretrain-epochs", type=int, default=20)
    ap.add_argument("--max-minutes", type=float, default=0.0, help="wall-clock cap of the records (0: none)")
    ap.add_argument("--md-ps", type=float, default=20.0,
                    help="NVT length with the best PaiNN after a dataset's runs (0: skip; the stored MD record stays)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                    help="reuse finished runs with the same budget found under <out>/accuracy_runs (default)")
    ap.add_argument("--report", action="store_true",
                    help="run nothing: rewrite the tables and plots from the finished runs under <out>/accuracy_runs")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    if args.max_minutes is not None and args.max_minutes <= 0:
        args.max_minutes = None
    args.quick = False  # the archived records' budget field
    return args


def planned_runs(datasets, backbones, sizes, seeds) -> list[dict]:
    """Every finetuning run, in the order they run: per dataset, smallest size first, all backbones at a size."""
    return [{"dataset": ds, "backbone": bb, "size": size, "seed": seed, "init": init}
            for ds in datasets for size in sizes for bb in backbones for seed in seeds for init in INITS]


def main(argv=None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    args, out, started = begin(parse_args(argv))
    runs = out / "accuracy_runs"
    datasets, backbones = known(csv_list(args.data), ("deepmd", "tip3p"), "dataset"), csv_list(args.backbones)
    sizes, seeds = csv_list(args.sizes), csv_list(args.seeds, int)
    console = Console(stderr=True)
    plan = planned_runs(datasets, backbones, sizes, seeds)
    done: dict = {}  # (dataset, backbone, size, seed, init) -> record
    md: dict = {}
    failures: dict = {}

    def key(r):
        return r["dataset"], r["backbone"], r["size"], r["seed"], r["init"]

    def write():
        records = [done.get(key(r), {**r, "pending": True}) for r in plan]
        write_outputs(records, md, failures, args, datasets, backbones, out, time.perf_counter() - started)

    if args.report:  # tables and plots from the finished runs and MD records only
        for r in plan:
            record = finished_run(runs / r["dataset"] / r["backbone"], run_name(r["init"], r["size"], r["seed"]), args)
            if record is not None:
                done[key(r)] = {**r, **record}
        md.update(stored_mds(runs, datasets, args))
        write()
        console.print(f"[green]wrote {out / 'accuracy.md'} from {len(done)} finished runs")
        return 0

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("accuracy", total=len(plan) + len(datasets))
        for ds in datasets:
            bar.update(task, description=f"{ds}: data")
            try:
                train, test = load_deepmd(args.quick) if ds == "deepmd" else load_tip3p(args.quick, out / "accuracy_data")
            except Exception as exc:
                failures[ds] = f"data: {first_line(exc)}"
                console.print(f"[red]{ds}: {failures[ds]}")
                for r in plan:
                    if r["dataset"] == ds:
                        done[key(r)] = {**r, "error": failures[ds]}
                bar.advance(task, sum(r["dataset"] == ds for r in plan) + 2 * len(backbones) + 1)
                continue
            for r in plan:  # the archived runs: stored records only
                if r["dataset"] != ds:
                    continue
                record = finished_run(runs / ds / r["backbone"], run_name(r["init"], r["size"], r["seed"]), args)
                done[key(r)] = {**r, **record} if record else {**r, "error": ARCHIVED}
                bar.advance(task)
            bar.update(task, description=f"{ds}: MD with the best PaiNN")
            if args.md_ps <= 0:  # e.g. a worker that finishes part of a dataset: keep the stored MD records
                md.update(stored_mds(runs, [ds], args))
                bar.advance(task)
                write()
                continue
            painn = [r for r in done.values() if r["dataset"] == ds and r["backbone"] == "painn" and not r.get("error")]
            if painn:
                best = min(painn, key=lambda r: r["force_mae"])
                name = f"painn {best['init']}, {best['n_train']} frames, seed {best['seed']}"
                # the same model as finetuned (the tables' numbers), then with maskpot's short-range repulsion
                # from its training frames (what `maskpot finetune` now adds by default)
                for md_key, label, folder, extra in ((ds, name, "md", None),
                                                     (f"{ds}{REPULSION_MD}", name + REPULSION_MD, "md-repulsion",
                                                      train)):
                    source = best if extra is None else {"checkpoint": str(runs / ds / "md" / "model.ckpt")}
                    try:
                        md[md_key] = md_quality(source, label, test[0], train + test, runs / ds / folder, args, extra)
                    except Exception as exc:
                        md[md_key] = {"error": first_line(exc)}
                    if "error" in md[md_key]:
                        console.print(f"[red]{ds} MD with {label}: {md[md_key]['error']}")
            elif "painn" in backbones:
                md[ds] = {"error": "no successful PaiNN run"}
            bar.advance(task)
            write()
    return finish(out / "accuracy.md", started, console.print)


if __name__ == "__main__":
    sys.exit(main())
