"""Does pretraining pay? Finetuning on a few DFT frames from scratch or from masked, denoising or supervised
pretraining, each trained to a plateau, with paired statistics over finetuning and pretraining seeds.

Usage (repository root, venv active):

    python benchmarks/pretraining.py                 # the study (many CPU hours; resumable, see below)
    python benchmarks/pretraining.py --quick         # tiny end-to-end check (a minute or two), same outputs
    python benchmarks/pretraining.py --report        # tables and plots from the finished records only

Run two workers on two cores (``--threads 1`` each): they share the task list through lock files and never
run the same task twice. A task that fails leaves <record>.error.json and is not run again by that worker (the
tasks that need it wait); a worker that starts retries the tasks that failed before it started, and stops (exit
status 1) after ``FAILURES_IN_A_ROW`` failures in a row, which point at the code or the machine rather than at
one task. Data:
  DFT     ../shared/data/water/deepmd_water: pool data_0..data_2 (320 frames); a fixed validation set of 32 pool
          frames, never trained on (early stopping, checkpoint choice); the other 288 are the training pool;
          test data_3 (80 frames).
  TIP3P   cheap classical geometries (flexible TIP3P, maskpot.data.tip3p) at the DFT set's size and density:
          64 waters in the 12.445 A box, 10 independent runs of 200 frames 0.5 ps apart (2000 pretraining
          frames, with energies and forces for the supervised baseline), validation: 64 frames of another run.
Pretrainings (equal compute: ``PRETRAIN_STEPS`` optimiser steps of batch 4 for every one; best validation kept):
  mask-tip3p, mask-dft   masking with the paper's read-out (the model's own forces), TIP3P or DFT geometries
  denoise-tip3p          denoising with the same read-out
  supervised-tip3p       finetuning on TIP3P energies and forces (energy shift and scale refit on DFT later)
  mask-head-dft          masking with a separate vector head, backbone transferred (the read-out ablation)
  scratch-no-ema         scratch without the EMA of the weights (the EMA ablation)
Finetuning: every run trains to a plateau (maskpot.train.loop: learning rate halved after 4 validations without
improvement, stop after ``PATIENCE`` such validations, at most ``MAX_STEPS`` steps; EMA weights), with the
short-range repulsion off (the tables compare networks). The same training frames for a finetuning seed whatever
the init, so differences are paired.

Records: <out>/pretraining_runs/<backbone>/{pre-<init>-p<seed>.ckpt,.json} and <init>-p<seed>-n<size>-s<seed>.json
(+ .log.csv), kept in git; finished records under the same budget are reused (``--no-resume`` starts over).
Generated data sit in <out>/pretraining_data/ (not in git: remade from seeds when the first task that reads
them comes up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (before openmm: the Torch plugin needs torch's libraries)

from benchmarks.common import argument_parser, csv_list, deepmd_water, save_json  # noqa: E402
from maskpot.errors import Interrupted, first_line  # noqa: E402

PRETRAIN_STEPS = 2500
MAX_STEPS = 20000  # a safety cap: finetuning runs stop on their validation plateau
EVAL_EVERY = 50
PATIENCE = 10
N_VAL = 32
SIZES = (10, 25, 50, 100)

# init -> (kind, objective, readout, pretraining data); scratch has no pretraining
INITS = {
    "scratch": None,
    "mask-tip3p": ("pretrain", "mask", "force", "tip3p"),
    "mask-dft": ("pretrain", "mask", "force", "dft"),
    "denoise-tip3p": ("pretrain", "denoise", "force", "tip3p"),
    "supervised-tip3p": ("supervised", None, None, "tip3p"),
    "mask-head-dft": ("pretrain", "mask", "head", "dft"),
    "scratch-no-ema": None,  # the EMA ablation: scratch with the raw weights validated and kept
}


@dataclass(frozen=True)
class Task:
    kind: str  # "tip3p" (data), "pretrain", "finetune"
    name: str  # file stem, unique within its folder
    backbone: str = ""
    init: str = ""
    pt_seed: int = 0
    size: int = 0
    seed: int = 0
    run: int = 0  # TIP3P run index

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.backbone}:{self.name}"


# ---- the plan ---------------------------------------------------------------------------------------------------

def plan(quick: bool) -> list[Task]:
    """Every pretraining and finetuning in priority order: (5a) PaiNN, the 10-frame cells of the first pretraining
    seed first (the EMA ablation and EGNN from scratch at 10 frames before denoising and the read-out ablation),
    then (5b) EGNN and GNS. The TIP3P data are not listed: they are made when the first task that needs them comes
    up (``inputs``), so a worker whose pretrainings are all finished never regenerates them."""
    if quick:  # PaiNN, one size, every kind of init once: a functional check
        inits = ["scratch", "mask-dft", "mask-tip3p", "supervised-tip3p", "mask-head-dft"]
        return block("painn", inits, (0,), (4,), (0, 1), lambda i: {4})
    # The first paired answers first: PaiNN from scratch on 10 frames, then each pretraining's first
    # seed with its 10-frame finetunings (masking and the supervised baseline before denoising and the read-out
    # ablation); then everything else, smallest sets first
    ten = lambda i: {10}  # noqa: E731
    first = block("painn", ["scratch"], (0,), (10,), (0, 1, 2), ten)
    first += block("painn", ["mask-tip3p", "mask-dft", "supervised-tip3p"], (0,), (10,), (0, 1, 2), ten)
    # then the two questions of the model code at 10 frames: is EMA worth its default (scratch without it), and
    # does EGNN, now that its vector channel feeds the energy, train as well as PaiNN (from scratch)
    first += block("painn", ["scratch-no-ema"], (0,), (10,), (0, 1, 2), ten)
    first += block("egnn", ["scratch"], (0,), (10,), (0, 1, 2), ten)
    first += block("painn", ["denoise-tip3p", "mask-head-dft"], (0,), (10,), (0, 1, 2), ten)
    # within a size, the inits that led at 10 frames (the candidates for the best recipe) before the others
    leaders = ["scratch", "mask-head-dft", "supervised-tip3p", "denoise-tip3p", "mask-tip3p", "mask-dft"]
    tasks = first + block("painn", leaders, (0, 1), SIZES, (0, 1, 2),
                          lambda i: {10, 50} if i == "mask-head-dft" else set(SIZES))
    tasks += block("painn", ["scratch-no-ema"], (0,), (10, 50), (0, 1, 2), lambda i: {10, 50})
    for bb in ("egnn", "gns"):
        tasks += block(bb, ["scratch", "mask-tip3p", "denoise-tip3p", "supervised-tip3p"], (0,), SIZES, (0, 1, 2),
                       lambda i: {10, 50})
    return list(dict.fromkeys(tasks))  # each task once, at its first place


def block(backbone: str, inits: list[str], pt_seeds, sizes, ft_seeds, sizes_of) -> list[Task]:
    """The pretrainings of ``inits`` and their finetunings, smallest size first."""
    out = [Task("pretrain", f"pre-{i}-p{p}", backbone, i, p) for i in inits if INITS[i] for p in pt_seeds]
    for size in sizes:
        for init in inits:
            if size not in sizes_of(init):
                continue
            for p in (pt_seeds if INITS[init] else (0,)):
                for s in ft_seeds:
                    out.append(Task("finetune", run_name(init, p, size, s), backbone, init, p, size, s))
    return out


def run_name(init: str, pt_seed: int, size: int, seed: int) -> str:
    return f"{init}-n{size}-s{seed}" if INITS[init] is None else f"{init}-p{pt_seed}-n{size}-s{seed}"


def tip3p_spec(quick: bool) -> dict:
    if quick:
        return dict(runs=2, n_molecules=16, box=7.84, n_frames=12, interval=50, equilibration_steps=200, n_val=8)
    return dict(runs=10, n_molecules=64, box=12.444661, n_frames=200, interval=1000, equilibration_steps=4000,
                n_val=64)


def model_config(backbone: str, quick: bool):
    from maskpot.models import ModelConfig

    # avg_neighbors fixed, not from the data: every record and resumable run of the study was made with 32
    if quick:
        return ModelConfig(backbone=backbone, hidden=16, layers=2, cutoff=3.5, num_rbf=8, avg_neighbors=32.0)
    return ModelConfig(backbone=backbone, avg_neighbors=32.0)


def budget(quick: bool) -> dict:
    """What makes records comparable: a finished record is reused only under the same budget."""
    if quick:
        return {"quick": True, "pretrain_steps": 20, "max_steps": 30, "eval_every": 10, "patience": 2,
                "n_val": 6}
    return {"quick": False, "pretrain_steps": PRETRAIN_STEPS, "max_steps": MAX_STEPS, "eval_every": EVAL_EVERY,
            "patience": PATIENCE, "n_val": N_VAL}


# ---- data -------------------------------------------------------------------------------------------------------

def dft_data(quick: bool):
    """(training pool, validation, test) DFT frames; the validation frames are a fixed draw from the pool."""
    from maskpot.data import split_frames

    pool, test = deepmd_water()
    if quick:
        pool, test = pool[::8], test[::8]
    n_val = budget(quick)["n_val"]
    val, train, _ = split_frames(pool, fractions=(n_val, len(pool) - n_val, 0.0), seed=12345)
    return train, val, test


def tip3p_path(data_dir: Path, quick: bool, run: int) -> Path:
    spec = tip3p_spec(quick)
    tag = f"m{spec['n_molecules']}-b{spec['box']:g}-i{spec['interval']}"
    return data_dir / f"tip3p-{tag}-run{run}.extxyz"


def make_tip3p(data_dir: Path, quick: bool, run: int) -> None:
    """One independent TIP3P run (seed ``run``; the last run is the validation run)."""
    from maskpot.data import write_extxyz
    from maskpot.data.tip3p import generate_tip3p

    spec = tip3p_spec(quick)
    n = spec["n_val"] if run == spec["runs"] else spec["n_frames"]
    frames = generate_tip3p(n_molecules=spec["n_molecules"], box=spec["box"], n_frames=n,
                            interval=spec["interval"], equilibration_steps=spec["equilibration_steps"],
                            seed=1000 + run)
    write_extxyz(frames, tip3p_path(data_dir, quick, run))


def tip3p_data(data_dir: Path, quick: bool):
    """(pretraining frames, validation frames) of TIP3P."""
    from maskpot.data import read

    runs = tip3p_spec(quick)["runs"]
    train = [f for r in range(runs) for f in read(tip3p_path(data_dir, quick, r))]
    return train, read(tip3p_path(data_dir, quick, runs))


# ---- tasks ------------------------------------------------------------------------------------------------------

def record_path(task: Task, out: Path, quick: bool) -> Path:
    if task.kind == "tip3p":
        return tip3p_path(out / "pretraining_data", quick, task.run)
    return out / "pretraining_runs" / task.backbone / f"{task.name}.json"


FAILURES_IN_A_ROW = 3


def error_path(task: Task, out: Path, quick: bool) -> Path:
    path = record_path(task, out, quick)
    return path.with_name(path.stem + ".error.json")


def failed(task: Task, out: Path, args) -> bool:
    """Whether ``task`` failed since this worker started (``args.since``, epoch seconds): older failures are
    retried."""
    path = error_path(task, out, args.quick)
    return path.is_file() and path.stat().st_mtime >= args.since


def finished(task: Task, out: Path, args) -> dict | None:
    """The finished record of ``task`` under this budget, or None."""
    path = record_path(task, out, args.quick)
    if not path.is_file():
        return None
    if task.kind == "tip3p":
        return {"path": str(path)}
    if not args.resume:
        return None
    record = json.loads(path.read_text())
    return record if comparable(record, budget(args.quick), task.kind) else None


def comparable(record: dict, now: dict, kind: str) -> bool:
    """A record counts under the budget ``now`` when it was made under it, or under one that differs only in the
    finetuning step cap where that cap did not matter: a pretraining (its length is pretrain_steps), or a
    finetuning that stopped on its plateau below a cap no larger than today's (it would train alike)."""
    then = record.get("budget") or {}
    if then == now:
        return True
    def uncapped(b: dict) -> dict:
        return {k: v for k, v in b.items() if k != "max_steps"}

    same_otherwise = uncapped(then) == uncapped(now)
    if kind != "finetune":
        return same_otherwise
    return same_otherwise and record.get("stopped") == "plateau" and then.get("max_steps", 0) <= now["max_steps"]


def inputs(task: Task, quick: bool) -> list[Task]:
    """The tasks whose outputs ``task`` reads: a finetuning its pretraining, a pretraining on TIP3P the data."""
    if task.kind == "tip3p":
        return []
    spec = INITS[task.init]
    if task.kind == "finetune":
        return [Task("pretrain", f"pre-{task.init}-p{task.pt_seed}", task.backbone, task.init, task.pt_seed)] \
            if spec else []
    return [Task("tip3p", f"tip3p-run{r}", run=r) for r in range(tip3p_spec(quick)["runs"] + 1)] \
        if spec[3] == "tip3p" else []


def next_runnable(task: Task, out: Path, args) -> Task | None:
    """``task`` if its inputs are finished, else the first unfinished input (depth first) that can run now;
    None when ``task`` is finished, has failed, or waits for inputs that run elsewhere or failed."""
    if finished(task, out, args) is not None or failed(task, out, args):
        return None
    waiting = [t for t in inputs(task, args.quick) if finished(t, out, args) is None]
    if not waiting:
        return task
    return next((r for t in waiting if (r := next_runnable(t, out, args)) is not None
                 and not lock_path(record_path(r, out, args.quick)).exists()), None)


def resumable(ckpt: Path) -> bool:
    """Whether an interrupted run of ``ckpt`` left its training state (a stopped worker's run continues)."""
    from maskpot.train.runlog import sibling

    return sibling(ckpt, ".state.pt").is_file()


def run_pretrain(task: Task, out: Path, args) -> dict:
    from maskpot.pretrain.loop import pretrain
    from maskpot.train.config import FinetuneConfig, PretrainConfig, PretrainTask
    from maskpot.train.finetune import finetune

    kind, objective, readout, source = INITS[task.init]
    b = budget(args.quick)
    folder = out / "pretraining_runs" / task.backbone
    ckpt = folder / f"{task.name}.ckpt"
    config = model_config(task.backbone, args.quick)
    if source == "tip3p":
        frames, val = tip3p_data(out / "pretraining_data", args.quick)
    else:
        frames, val, _ = dft_data(args.quick)
    never = b["pretrain_steps"]  # equal compute: no early stop
    t0 = time.perf_counter()
    if kind == "supervised":
        cfg = FinetuneConfig(max_steps=b["pretrain_steps"], eval_every=2 * b["eval_every"], patience=never,
                             seed=task.pt_seed, repulsion=False, compile=not args.quick)
        result = finetune(frames, ckpt, cfg, model_config=config, val_frames=val, resume=resumable(ckpt))
        best, metric = result.best_step, result.val_metrics["force_mae"]
    else:
        cfg = PretrainConfig(max_steps=b["pretrain_steps"], eval_every=2 * b["eval_every"], patience=never,
                             seed=task.pt_seed, compile=not args.quick and readout == "force")
        result = pretrain(frames, ckpt, config, PretrainTask(objective, readout), cfg, val_frames=val,
                          resume=resumable(ckpt))
        best, metric = result.best_step, result.best_val["loss"]
    return {"budget": b, "backbone": task.backbone, "init": task.init, "pt_seed": task.pt_seed,
            "best_step": best, "val_metric": metric, "n_frames": len(frames), "seconds": run_seconds(result.rows, t0)}


def run_seconds(rows: list[dict], t0: float) -> float:
    """Training seconds of a run, summed over its resumed parts (the log's last row), else since ``t0``."""
    return float(rows[-1]["seconds"]) if rows and "seconds" in rows[-1] else time.perf_counter() - t0


def run_finetune(task: Task, out: Path, args) -> dict:
    from maskpot.train.config import FinetuneConfig
    from maskpot.train.finetune import finetune

    b = budget(args.quick)
    folder = out / "pretraining_runs" / task.backbone
    pool, val, test = dft_data(args.quick)
    init = None
    if INITS[task.init]:
        init = str(folder / f"pre-{task.init}-p{task.pt_seed}.ckpt")
    cfg = FinetuneConfig(max_steps=b["max_steps"], eval_every=b["eval_every"], patience=b["patience"],
                         seed=task.seed, train_frames=task.size, repulsion=False, compile=not args.quick)
    if task.init == "scratch-no-ema":
        cfg = replace(cfg, ema_decay=0.0)
    t0 = time.perf_counter()
    ckpt = folder / f"{task.name}.ckpt"
    result = finetune(pool, ckpt, cfg, model_config=None if init else model_config(task.backbone, args.quick),
                      init=init, test_frames=test, val_frames=val, resume=resumable(ckpt))
    evals = [r for r in result.rows if r["step"] > 0]
    return {"budget": b, "backbone": task.backbone, "init": task.init, "pt_seed": task.pt_seed if init else None,
            "train_frames": task.size, "seed": task.seed, "best_step": result.best_step,
            "steps": result.rows[-1]["step"], "stopped": result.stopped,
            "best_at_last": result.best_step == result.rows[-1]["step"], "n_evals": len(evals),
            "compiled": cfg.compile,
            "init_part": (result.init_report or {}).get("part"), "val_force_mae": result.val_metrics["force_mae"],
            "seconds": run_seconds(result.rows, t0), "log": str(result.log_path.relative_to(out)),
            **{k: v for k, v in (result.test_metrics or {}).items()}}


# ---- scheduling -------------------------------------------------------------------------------------------------

def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def claim(path: Path) -> bool:
    """Take ``path.lock`` for this process (O_EXCL); a lock whose process is gone is taken over."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return True
        except FileExistsError:
            try:
                pid = int(lock.read_text() or "0")
                os.kill(pid, 0)
                return False  # alive: someone else's task
            except (ProcessLookupError, ValueError):
                lock.unlink(missing_ok=True)  # stale
            except PermissionError:
                return False
    return False


def release(path: Path) -> None:
    lock_path(path).unlink(missing_ok=True)


def parse_args(argv=None):
    ap = argument_parser(__doc__, quick="tiny end-to-end check (tiny models, data and budgets)")
    ap.add_argument("--backbones", default="painn,egnn,gns")
    ap.add_argument("--max-tasks", type=int, default=0, help="stop after this many tasks (0: all)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                    help="reuse finished records with the same budget (default)")
    ap.add_argument("--report", action="store_true", help="run nothing: rewrite tables and plots")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    if args.quick:
        args.threads = args.threads or 1
    return args


def main(argv=None) -> int:
    import logging

    from benchmarks.pretraining_report import write_outputs

    args = parse_args(argv)
    args.since = time.time()  # failures recorded before this are retried
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    backbones = set(csv_list(args.backbones))
    tasks = [t for t in plan(args.quick) if t.backbone in backbones]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    say = lambda msg: print(time.strftime("%H:%M:%S"), msg, flush=True)  # noqa: E731

    def report():
        runs = [t for t in tasks if t.kind == "finetune"]
        write_outputs([finished(t, out, args) or {"pending": True, "backbone": t.backbone, "init": t.init,
                                                  "train_frames": t.size, "seed": t.seed} for t in runs], out, args)

    if args.report:
        report()
        say(f"wrote {out / 'pretraining.md'}")
        return 0
    done_here = failures = 0
    while True:
        todo = [t for t in tasks if finished(t, out, args) is None and not failed(t, out, args)]
        if not todo:
            break
        task = next((r for t in todo if (r := next_runnable(t, out, args)) is not None
                     and claim(record_path(r, out, args.quick))), None)
        if task is None:  # what is left runs in another worker, or waits for what runs there
            every = tasks + [i for t in tasks for i in inputs(t, args.quick)]
            if not any(lock_path(record_path(t, out, args.quick)).exists() for t in every):
                say("nothing can run: the tasks left wait for failed ones (see *.error.json)")
                break
            time.sleep(20)
            continue
        path = record_path(task, out, args.quick)
        say(f"start {task.key}")
        try:
            if task.kind == "tip3p":
                make_tip3p(out / "pretraining_data", args.quick, task.run)
            else:
                record = run_pretrain(task, out, args) if task.kind == "pretrain" else run_finetune(task, out, args)
                save_json(path, record)
                if task.kind == "finetune":
                    report()
            error_path(task, out, args.quick).unlink(missing_ok=True)  # a failure before this worker's start
            failures = 0
            say(f"done  {task.key}")
        except Interrupted as exc:  # Ctrl-C: the run's state stays for the next worker to resume
            say(f"interrupted {task.key}: {exc}")
            release(path)
            return 130
        except Exception as exc:  # recorded; tasks that need this one wait (the next worker to start retries it)
            say(f"FAILED {task.key}: {first_line(exc)}")
            save_json(error_path(task, out, args.quick), {"error": first_line(exc)})
            failures += 1
        finally:
            release(path)
        if failures >= FAILURES_IN_A_ROW:
            say(f"stopping: {failures} tasks failed in a row (see *.error.json); a worker started after the "
                "cause is fixed retries them")
            report()
            return 1
        done_here += 1
        if args.max_tasks and done_here >= args.max_tasks:
            break
    report()
    say(f"wrote {out / 'pretraining.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
