"""The paper's comparison: finetuning from scratch vs from a masked- or denoising-pretrained backbone.

Usage (repository root, venv active):

    python benchmarks/accuracy.py             # full comparison (~12 h of CPU here; resumable, see below)
    python benchmarks/accuracy.py --quick     # tiny end-to-end check (~3 min on 2 cores), same output files

For each dataset and backbone: pretrain once with ``objective=mask`` and once with ``objective=denoise`` on the
training positions; finetune ``scratch`` / ``mask`` / ``denoise`` at each training-set size and seed with the same
budget (epochs, patience, --max-minutes); evaluate on the held-out test split (energy MAE/RMSE in meV/atom, force
MAE/RMSE in meV/A). Datasets:
  deepmd  ../shared/data/water/deepmd_water: data_0..data_2 train (validation split off them), data_3 test.
  tip3p   flexible TIP3P from maskpot.data.tip3p (64 waters in a 12.42 A box, the DeePMD set's size, so both
          datasets cost the same): training frames from independent runs (seeds 0..3), test frames from another
          run (seed 100), on OpenMM's Reference platform so that every machine makes the same frames; cached in
          <out>/accuracy_data/.
MD quality: the best finetuned PaiNN per dataset runs NVT at 300 K in LAMMPS (export + run_lammps_md, 0.5 fs) for
--md-ps; O-O and O-H radial distribution functions are compared with the dataset's, and molecules that
dissociated by the end are counted (an O without exactly two H within 1.3 A).

Outputs in --out: accuracy.md, accuracy.json, accuracy_force_mae.png, learning_curves.png, rdf.png, rewritten
after every finished run (unfinished rows show as pending). Under <out>/accuracy_runs/ each run leaves its record
(JSON) and CSV log, each pretraining its checkpoint, each MD its record and model: these are kept in git, so the
full matrix accumulates across machines and sessions: run the same command again and finished runs with the same
budget are reused (``--no-resume`` starts over). Runs go smallest training sets first, every backbone at a size
before the next size. Budgets: every finetuning run gets the same epochs and patience and no wall-clock cap
(default), so runs are compared at equal epochs; ``--max-minutes`` sets a cap.
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
from benchmarks.common import REPO_ROOT, csv_list, save_json  # noqa: E402
from maskpot.errors import first_line  # noqa: E402

REPULSION_MD = " + repulsion"  # MD rows of the best PaiNN with maskpot.models.repulsion added
DEEPMD = REPO_ROOT.parent / "shared" / "data" / "water" / "deepmd_water"


# ---- data -----------------------------------------------------------------------------------------------------

def load_deepmd(quick: bool):
    from maskpot.data import read_many

    if not (DEEPMD / "data_3" / "type.raw").is_file():
        raise FileNotFoundError(f"{DEEPMD}: DeePMD water data not found")
    train = read_many([DEEPMD / f"data_{k}" for k in range(3)])
    test = read_many([DEEPMD / "data_3"])
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


# ---- training runs --------------------------------------------------------------------------------------------

def model_config(backbone: str, quick: bool):
    from maskpot.models import ModelConfig

    if quick:
        return ModelConfig(backbone=backbone, hidden=16, layers=2, cutoff=4.0, num_rbf=8)
    return ModelConfig(backbone=backbone)


PRETRAIN_BUDGET = ("pretrain_epochs", "max_minutes", "quick")


def budget(args) -> dict:
    """What makes two runs comparable: a finished run is reused only under the same budget (the finetuning
    loss weights are maskpot's FinetuneConfig defaults and are recorded too)."""
    from maskpot.train.finetune import FinetuneConfig

    defaults = FinetuneConfig()
    return {"epochs": args.epochs, "patience": args.patience, "pretrain_epochs": args.pretrain_epochs,
            "max_minutes": args.max_minutes, "quick": args.quick, "energy_weight": defaults.energy_weight,
            "force_weight": defaults.force_weight}


def reusable(record_path: Path, args, keys: tuple[str, ...] | None = None) -> dict | None:
    """The JSON record at ``record_path`` if --resume and it was made under this budget (or under the same
    values of ``keys`` of it), else None."""
    if not (args.resume and record_path.is_file()):
        return None
    record = json.loads(record_path.read_text())
    made, now = record.get("budget") or {}, budget(args)
    same = all(made.get(k) == now[k] for k in keys) if keys else made == now
    return record if same else None


def pretrain_run(frames, folder: Path, config, objective: str, args) -> Path:
    from maskpot.pretrain.loop import PretrainConfig, pretrain
    from maskpot.pretrain.objective import PretrainTask

    path = folder / f"pretrain-{objective}.ckpt"
    if not (path.is_file() and reusable(path.with_suffix(".json"), args, PRETRAIN_BUDGET)):
        t0 = time.perf_counter()
        pretrain(frames, path, config, PretrainTask(objective=objective),
                 PretrainConfig(epochs=args.pretrain_epochs, seed=0, max_minutes=args.max_minutes), show_progress=False)
        save_json(path.with_suffix(".json"), {"budget": budget(args), "seconds": time.perf_counter() - t0})
    return path


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


def finetune_run(frames, test, folder: Path, config, init: str, init_path: Path | None, size, seed, args) -> dict:
    from maskpot.train.finetune import FinetuneConfig, finetune

    name = run_name(init, size, seed)
    record_path = folder / f"{name}.json"
    record = finished_run(folder, name, args)
    if record is not None:
        return record
    # repulsion off: the tables compare the networks; it is zero on training frames but not on every test frame
    # (a small training set's closest contacts are farther apart), and the MD check adds it separately
    cfg = FinetuneConfig(epochs=args.epochs, patience=args.patience, seed=seed, max_minutes=args.max_minutes,
                         train_frames=None if size == "all" else int(size), repulsion=False)
    t0 = time.perf_counter()
    result = finetune(frames, folder / f"{name}.ckpt", cfg, model_config=config if init_path is None else None,
                      init=None if init_path is None else str(init_path), test_frames=test, show_progress=False)
    rows = result.rows
    record = {"budget": budget(args), "n_train": n_train(folder / f"{name}.ckpt"), "best_epoch": result.best_epoch,
              "epochs_run": rows[-1]["epoch"], "seconds": time.perf_counter() - t0,
              "checkpoint": str(folder / f"{name}.ckpt"), "log": str(result.log_path), **(result.test_metrics or {})}
    save_json(record_path, record)
    return record


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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="tiny end-to-end check: painn only, a small model, sizes 4 and all (of a 40/24-frame "
                         "subset), 1 seed, 3 epochs, 0.05 ps MD, 1 torch thread")
    ap.add_argument("--data", default="deepmd,tip3p")
    ap.add_argument("--backbones", default="painn,egnn,gns")
    ap.add_argument("--sizes", default="10,25,50,100,all", help="training frames per finetuning run ('all' = pool)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=20, help="finetuning epochs (max)")
    ap.add_argument("--patience", type=int, default=20, help="finetuning early-stopping patience (epochs)")
    ap.add_argument("--pretrain-epochs", type=int, default=20)
    ap.add_argument("--max-minutes", type=float, default=0.0,
                    help="wall-clock budget per pretraining/finetuning run (0: none, runs end at --epochs)")
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
    if args.quick:
        args.backbones, args.sizes, args.seeds = "painn", "4,all", "0"
        args.epochs, args.patience, args.pretrain_epochs, args.md_ps = 3, 3, 2, 0.05
        # one thread: on a loaded machine torch's OpenMP threads spin-wait and small models run 10-100x slower
        args.threads = args.threads or 1
    return args


def planned_runs(datasets, backbones, sizes, seeds) -> list[dict]:
    """Every finetuning run, in the order they run: per dataset, smallest size first, all backbones at a size."""
    return [{"dataset": ds, "backbone": bb, "size": size, "seed": seed, "init": init}
            for ds in datasets for size in sizes for bb in backbones for seed in seeds for init in INITS]


def main(argv=None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    out = Path(args.out)
    runs = out / "accuracy_runs"
    datasets, backbones = csv_list(args.data), csv_list(args.backbones)
    sizes, seeds = csv_list(args.sizes), csv_list(args.seeds, int)
    unknown = set(datasets) - {"deepmd", "tip3p"}
    if unknown:
        raise SystemExit(f"unknown dataset(s) {', '.join(sorted(unknown))}; choose deepmd, tip3p")
    console = Console(stderr=True)
    started = time.perf_counter()
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
        task = bar.add_task("accuracy", total=len(plan) + len(datasets) * (2 * len(backbones) + 1))
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
            inits: dict = {}
            for bb in backbones:
                inits[bb] = {"scratch": None}
                for objective in ("mask", "denoise"):
                    bar.update(task, description=f"{ds} {bb}: pretrain {objective}")
                    try:
                        inits[bb][objective] = pretrain_run(train, runs / ds / bb, model_config(bb, args.quick),
                                                            objective, args)
                    except Exception as exc:
                        inits[bb][objective] = f"pretraining failed: {first_line(exc)}"
                        console.print(f"[red]{ds} {bb} {objective}: {inits[bb][objective]}")
                    bar.advance(task)
            for r in plan:
                if r["dataset"] != ds:
                    continue
                bb, size, seed, init = r["backbone"], r["size"], r["seed"], r["init"]
                bar.update(task, description=f"{ds} {bb}: {init}, {size} frames, seed {seed}")
                rec = dict(r)
                try:
                    if isinstance(inits[bb][init], str):
                        raise RuntimeError(inits[bb][init])
                    rec.update(finetune_run(train, test, runs / ds / bb, model_config(bb, args.quick), init,
                                            inits[bb][init], size, seed, args))
                except Exception as exc:
                    rec["error"] = first_line(exc)
                    console.print(f"[red]{ds} {bb} {init} n={size} seed {seed}: {rec['error']}")
                done[key(r)] = rec
                bar.advance(task)
                if not rec.get("reused"):
                    write()
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
    console.print(f"[green]wrote {out / 'accuracy.md'} ({time.perf_counter() - started:.0f} s)")
    return 0



if __name__ == "__main__":
    sys.exit(main())
