"""The ``maskpot`` command line. Thin: parse options, call library functions, print with rich.

Every exception that reaches :func:`main` becomes one red ``error: ...`` line on stderr and exit status 1;
Ctrl-C one line and status 130 (``maskpot.errors.Interrupted`` carries what the run kept); ``MASKPOT_DEBUG=1``
prints the traceback before the line.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

# Every default of an option is read from the library (the typed configs of maskpot.models.config,
# maskpot.train.config and maskpot.md; generate_tip3p's signature): none imports torch, so --help stays fast.
# tests/train/test_train_cli.py pins that.
from maskpot.data.tip3p import generate_tip3p
from maskpot.md import ENSEMBLES, MDConfig
from maskpot.models.config import ModelConfig
from maskpot.train.config import EVAL_BATCH_SIZE, FinetuneConfig, PretrainConfig, PretrainTask

M, P, F, T, MD = ModelConfig, PretrainConfig, FinetuneConfig, PretrainTask, MDConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="maskpot: masked pretraining -> finetuning -> export -> MD.")
data_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                       help="Read, inspect and generate data sets.")
lammps_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help="LAMMPS plugin helpers.")
app.add_typer(data_app, name="data")
app.add_typer(lammps_app, name="lammps")
console = Console()
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def defaults(function) -> dict:
    """The keyword defaults of a library ``function``, for the options of the command that calls it."""
    import inspect

    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


TIP3P = defaults(generate_tip3p)


def warn(text: str) -> None:
    """One yellow ``warning: ...`` line on stderr."""
    from rich.text import Text

    err_console.print(Text.assemble(("warning:", "yellow"), " ", text))


# ---- data commands (maskpot data ...) ------------------------------------------------------------------------

@data_app.command("tip3p")
def data_tip3p(
    out: str = typer.Option(..., "--out", help="Output extended XYZ file."),
    molecules: int = typer.Option(TIP3P["n_molecules"], "--molecules", help="Number of water molecules."),
    box: float = typer.Option(TIP3P["box"], "--box", help="Cubic box edge, Angstrom."),
    temperature: float = typer.Option(TIP3P["temperature"], "--temperature", help="Kelvin."),
    frames: int = typer.Option(TIP3P["n_frames"], "--frames", help="Frames to save per run."),
    runs: int = typer.Option(1, "--runs", help="Independent runs (seeds SEED, SEED+1, ...), each --frames frames."),
    interval: int = typer.Option(TIP3P["interval"], "--interval", help="MD steps between saved frames."),
    timestep: float = typer.Option(TIP3P["timestep"], "--timestep", help="fs."),
    equilibration: int = typer.Option(TIP3P["equilibration_steps"], "--equilibration",
                                      help="MD steps before the first frame of a run."),
    seed: int = typer.Option(TIP3P["seed"], "--seed"),
) -> None:
    """Generate flexible-TIP3P water frames with OpenMM (energies in eV, forces in eV/A) into an extxyz file.

    Pretraining sets at the DeePMD water set's size and density, 2000 frames 0.5 ps apart from 10 runs:
    maskpot data tip3p --molecules 64 --box 12.4447 --runs 10 --frames 200 --interval 1000 --equilibration 4000
    """
    from dataclasses import replace

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from maskpot.data import summary, write_extxyz

    if runs < 1:
        raise ValueError(f"--runs must be at least 1, got {runs}")
    per_run = equilibration + frames * interval
    result = []
    with Progress(TextColumn("[bold]TIP3P MD"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("md", total=runs * per_run)
        for r in range(runs):
            made = generate_tip3p(n_molecules=molecules, box=box, temperature=temperature, n_frames=frames,
                                  interval=interval, timestep=timestep, seed=seed + r,
                                  equilibration_steps=equilibration,
                                  progress=lambda done, total, r=r: bar.update(task, completed=r * per_run + done))
            result += [replace(f, source=f"tip3p seed {seed + r} frame {k}") for k, f in enumerate(made)]
    path = write_extxyz(result, out)
    info = summary(result)
    console.print(f"wrote {path}: {info['n_frames']} frames of {info['n_atoms_max']} atoms ({molecules} H2O, "
                  f"{box:g} A box, {temperature:g} K, {runs} run(s)), energy/atom {info['energy_per_atom_mean']:.4f} "
                  f"eV, force RMS {info['force_rms']:.3f} eV/A")


@data_app.command("info")
def data_info(paths: list[str] = typer.Argument(..., help="Files or folders to read.")) -> None:
    """Read each path and print a summary table (frames, atoms, species, label statistics); warn about frames
    that training would refuse (non-finite values, overlapping atoms)."""
    from rich.table import Table

    from maskpot.data import read, summary
    from maskpot.data.checks import frame_problem

    for path in paths:
        frames = read(path)
        info = summary(frames)
        table = Table(show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value")
        atoms = f"{info['n_atoms_min']}" if info["n_atoms_min"] == info["n_atoms_max"] \
            else f"{info['n_atoms_min']}-{info['n_atoms_max']}"
        fmt = lambda v, unit: "-" if v is None else f"{v:.6g} {unit}"  # noqa: E731
        rows = [("frames", str(info["n_frames"])), ("atoms per frame", atoms),
                ("species", ", ".join(f"{s} {n}" for s, n in info["species"].items())),
                ("periodic", info["periodic"]), ("energies", "yes" if info["has_energy"] else "no"),
                ("forces", "yes" if info["has_forces"] else "no"),
                ("energy/atom mean", fmt(info["energy_per_atom_mean"], "eV")),
                ("energy/atom std", fmt(info["energy_per_atom_std"], "eV")),
                ("force RMS (component)", fmt(info["force_rms"], "eV/A")),
                ("max |F|", fmt(info["force_max"], "eV/A"))]
        for key, value in rows:
            table.add_row(key, value)
        console.print(f"[bold]{path}[/bold]", highlight=False)
        console.print(table)
        problems = [p for p in map(frame_problem, frames) if p is not None]
        if problems:
            warn(f"{len(problems)} of {len(frames)} frames would be refused for training (NaN statistics come "
                 f"from them); the first: {problems[0]}")

# ---- training commands (pretrain, finetune, evaluate) --------------------------------------------------------

# help of the options both training commands take
MAX_STEPS = "optimiser steps at most"
EVAL_EVERY = "steps between validations"
PATIENCE = "stop after this many validations without improvement"
EMA = "EMA of the weights that is validated and kept (0: off)"
MAX_MINUTES = "stop after the validation that crosses this budget"
RESUME = "continue an interrupted run from its state file (<out>.state.pt)"
COMPILE = "torch.compile the training step: faster per step after about a minute of compiling per batch shape " \
          "(long runs)"
AVG_NEIGHBORS = "neighbour sums are divided by this; default: from the training data (the mean neighbours " \
                "within --cutoff per atom, stored in the checkpoint)"


def _typed(cls, options: dict):
    """A ``cls`` config from a command's ``options`` named as its fields (the others keep their defaults),
    checked: a one-line ValueError for values no run can use."""
    from dataclasses import fields

    config = cls(**{f.name: options[f.name] for f in fields(cls) if f.name in options})
    config.check()
    return config


def _model_config(frames, model, cutoff, hidden, layers, dtype, avg_neighbors):
    """ModelConfig for a new model; species are the elements present in ``frames``; None = the default (for
    avg_neighbors: computed from the training frames by the library)."""
    import numpy as np

    species = sorted({int(z) for f in frames for z in np.unique(f.numbers)})
    given = {"backbone": model, "cutoff": cutoff, "hidden": hidden, "layers": layers, "dtype": dtype,
             "avg_neighbors": avg_neighbors}
    return ModelConfig(species=species, **{k: v for k, v in given.items() if v is not None})


def _metrics_table(title: str, rows: dict[str, dict]):
    from rich.table import Table

    table = Table(title=title)
    for col in ("set", "frames", "energy MAE\nmeV/atom", "energy RMSE\nmeV/atom", "force MAE\nmeV/Å", "force RMSE\nmeV/Å"):
        table.add_column(col, justify="right" if col != "set" else "left")
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    for name, m in rows.items():
        table.add_row(name, str(m["frames"]), fmt(m["energy_mae"]), fmt(m["energy_rmse"]), fmt(m["force_mae"]),
                      fmt(m["force_rmse"]))
    return table


class _TrainProgress:
    """A rich bar over optimiser steps, advanced at each evaluation (the library calls ``__call__`` with the
    log row). It appears at the first evaluation and goes when the run ends, so a run that fails leaves only
    its error line."""

    def __init__(self, stage: str, max_steps: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn(stage), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                            TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=err_console,
                            transient=True)
        self.task = self.bar.add_task(stage, total=max_steps, info="")
        self.started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.started:
            self.bar.stop()
        return False

    def __call__(self, row: dict) -> None:
        if not self.started:
            self.bar.start()
            self.started = True
        info = f"val loss {row['val_loss']:.4g}, lr {row['lr']:.2g}"
        if row.get("val_force_mae") is not None:
            info += f", F {row['val_force_mae']:.1f} meV/Å"
        self.bar.update(self.task, completed=row["step"], info=info)


@app.command()
def pretrain(
    data: list[str] = typer.Argument(..., help="structures (any format maskpot reads); only positions are used"),
    out: str = typer.Option("pretrained.ckpt", "--out", "-o", help="checkpoint to write"),
    model: str = typer.Option(M.backbone, help="painn | egnn | gns"),
    objective: str = typer.Option(T.objective, help="mask | denoise | both"),
    readout: str = typer.Option(T.readout, help="force: the model's own forces answer the task and finetuning "
                                                "takes the whole model | head: a vector head answers, finetuning "
                                                "takes the backbone"),
    mask_ratio: float = typer.Option(T.mask_ratio, help="fraction of H-bearing molecules masked per frame"),
    noise: float = typer.Option(T.noise, help="denoising noise sigma, Å"),
    val: list[str] = typer.Option(None, help="validation structures (default: a --val-fraction split of DATA)"),
    max_steps: int = typer.Option(P.max_steps, help=MAX_STEPS),
    batch_size: int = typer.Option(P.batch_size),
    lr: float = typer.Option(P.lr),
    eval_every: int = typer.Option(P.eval_every, help=EVAL_EVERY),
    patience: int = typer.Option(P.patience, help=PATIENCE),
    ema_decay: float = typer.Option(P.ema_decay, help=EMA),
    seed: int = typer.Option(P.seed),
    val_fraction: float = typer.Option(P.val_fraction),
    max_minutes: float = typer.Option(P.max_minutes, help=MAX_MINUTES),
    resume: bool = typer.Option(False, help=RESUME),
    cutoff: float = typer.Option(M.cutoff, help="Å"),
    hidden: int = typer.Option(M.hidden),
    layers: int = typer.Option(M.layers),
    dtype: str = typer.Option(M.dtype, help="float32 | float64"),
    avg_neighbors: float = typer.Option(M.avg_neighbors, help=AVG_NEIGHBORS),
    compile: bool = typer.Option(P.compile, help=COMPILE + "; the force read-out"),
) -> None:
    """Self-supervised pretraining on geometries (masked hydrogens and/or denoising)."""
    from maskpot.data import read_many
    from maskpot.pretrain.loop import pretrain as run

    frames = read_many(data)
    config = _model_config(frames, model, cutoff, hidden, layers, dtype, avg_neighbors)
    cfg, task = _typed(PretrainConfig, locals()), _typed(PretrainTask, locals())
    with _TrainProgress(f"pretrain ({objective})", max_steps) as bar:
        result = run(frames, out, config, task, cfg,
                     val_frames=read_many(val) if val else None, resume=resume, on_eval=bar)
    console.print(f"wrote {out} (best step {result.best_step}, val loss {result.best_val['loss']:.4f}, "
                  f"stopped: {result.stopped}); log {result.log_path}")


@app.command()
def finetune(
    data: list[str] = typer.Argument(..., help="labelled structures (energies and forces)"),
    out: str = typer.Option("model.ckpt", "--out", "-o", help="checkpoint to write"),
    init: str = typer.Option(None, help="checkpoint to start from: pretrained (read-out force: the whole model; "
                                        "head: the backbone) or finetuned (the whole model); the model options "
                                        "then come from it"),
    val: list[str] = typer.Option(None, help="validation structures (default: a --val-fraction split of DATA)"),
    test: list[str] = typer.Option(None, help="test data evaluated with the best weights (repeatable)"),
    train_frames: int = typer.Option(F.train_frames, help="use only this many training frames"),
    max_steps: int = typer.Option(F.max_steps, help=MAX_STEPS),
    batch_size: int = typer.Option(F.batch_size),
    lr: float = typer.Option(F.lr),
    weight_decay: float = typer.Option(F.weight_decay),
    energy_weight: float = typer.Option(F.energy_weight, help="w_E on per-atom energy L1"),
    force_weight: float = typer.Option(F.force_weight, help="w_F on force L1"),
    eval_every: int = typer.Option(F.eval_every, help=EVAL_EVERY),
    patience: int = typer.Option(F.patience, help=PATIENCE),
    ema_decay: float = typer.Option(F.ema_decay, help=EMA),
    seed: int = typer.Option(F.seed),
    val_fraction: float = typer.Option(F.val_fraction, help="ignored with --val"),
    max_minutes: float = typer.Option(F.max_minutes, help=MAX_MINUTES),
    resume: bool = typer.Option(False, help=RESUME),
    model: str = typer.Option(None, help=f"painn | egnn | gns (default {M.backbone}; not with --init)"),
    cutoff: float = typer.Option(None, help=f"Å (default {M.cutoff}; not with --init)"),
    hidden: int = typer.Option(None, help=f"default {M.hidden}; not with --init"),
    layers: int = typer.Option(None, help=f"default {M.layers}; not with --init"),
    dtype: str = typer.Option(None, help=f"float32 | float64 (default {M.dtype}; not with --init)"),
    avg_neighbors: float = typer.Option(None, help=AVG_NEIGHBORS + "; not with --init"),
    repulsion: bool = typer.Option(F.repulsion, help="ZBL repulsion below each element pair's closest distance in "
                                                     "the training frames (energy-centric models)"),
    compile: bool = typer.Option(F.compile, help=COMPILE),
) -> None:
    """Train energies and forces, from scratch or from a checkpoint (--init)."""
    from maskpot.data import read_many
    from maskpot.train.finetune import finetune as run

    frames = read_many(data)
    given = [n for n, v in (("--model", model), ("--cutoff", cutoff), ("--hidden", hidden), ("--layers", layers),
                            ("--dtype", dtype), ("--avg-neighbors", avg_neighbors)) if v is not None]
    if init and given:
        raise ValueError(f"{', '.join(given)} cannot be combined with --init (the model comes from {init})")
    config = None if init else _model_config(frames, model, cutoff, hidden, layers, dtype, avg_neighbors)
    cfg = _typed(FinetuneConfig, locals())
    with _TrainProgress("finetune", max_steps) as bar:
        result = run(frames, out, cfg, model_config=config, init=init, test_frames=read_many(test) if test else None,
                     val_frames=read_many(val) if val else None, resume=resume, on_eval=bar)
    if result.init_report:
        r = result.init_report
        what = "the whole model (backbone and head)" if r["part"] == "model" else "the backbone"
        console.print(f"started from {what} of {init}: {r['loaded']} tensors; energy shift and scale fitted here")
    rows = {"validation": result.val_metrics}
    if result.test_metrics:
        rows["test"] = result.test_metrics
    console.print(_metrics_table(f"{out} (best step {result.best_step}, stopped: {result.stopped})", rows))
    _print_repulsion(result.config)
    console.print(f"wrote {out}; log {result.log_path}")


def _repulsion_text(config) -> str:
    """The repulsion table of a ModelConfig, one "O-O: ZBL below ..." phrase per pair, or "none"."""
    from maskpot.models.repulsion import describe

    return "; ".join(describe(config.repulsion, config.repulsion_width)) or "none"


def _print_repulsion(config) -> None:
    console.print("repulsion: " + _repulsion_text(config))


@app.command()
def repulsion(
    checkpoint: str = typer.Argument(..., help="finetuned energy-centric checkpoint"),
    data: list[str] = typer.Argument(..., help="its training data (or data like it)"),
    out: str = typer.Option(..., "--out", "-o", help="checkpoint to write"),
) -> None:
    """Add the short-range repulsion (ZBL below each element pair's closest distance in DATA) to a checkpoint
    finetuned before finetuning did it by itself."""
    from maskpot.data import read_many
    from maskpot.train.checkpoint import add_repulsion, load_checkpoint

    add_repulsion(checkpoint, read_many(data), out)
    _print_repulsion(load_checkpoint(out).config)
    console.print(f"wrote {out}")


@app.command()
def evaluate(
    checkpoint: str = typer.Argument(..., help="finetuned checkpoint"),
    data: list[str] = typer.Argument(..., help="labelled structures"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
    plot: str = typer.Option(None, help="write a force parity PNG here"),
    batch_size: int = typer.Option(EVAL_BATCH_SIZE),
) -> None:
    """Energy (meV/atom) and force (meV/Å) errors of a finetuned model on labelled data."""
    import json

    from maskpot.data import read_many
    from maskpot.train.checkpoint import load_potential
    from maskpot.train.metrics import error_metrics, predict
    from maskpot.train.plots import force_parity

    potential = load_potential(checkpoint)
    preds = predict(potential, read_many(data), batch_size)
    metrics = error_metrics(preds, bool(potential.energy_centric))
    if plot:
        force_parity(preds.forces_ref, preds.forces_pred, plot, title=checkpoint)
    if as_json:
        print(json.dumps(metrics))
    else:
        console.print(_metrics_table(checkpoint, {"data": metrics}))


# ---- export commands (export, info) and md -------------------------------------------------------------------


@app.command()
def export(
    checkpoint: str = typer.Argument(..., help="finetuned checkpoint (.ckpt)"),
    target: str = typer.Option(..., "--target", "-t", help="openmm | lammps | ase"),
    out: str = typer.Option(None, "--out", "-o", help="output file (default: <checkpoint>-<target>.pt, .pt2 for aoti)"),
    dtype: str = typer.Option(None, help="float32 | float64 (default: the checkpoint's)"),
    topology: str = typer.Option(None, help="OpenMM only: structure whose atomic numbers are baked in"),
    export_format: str = typer.Option(None, "--format", help="torchscript (default) | aoti (an AOTInductor .pt2 "
                                      "package for lammps on one MPI rank, ase, and openmm through PythonForce; "
                                      "compiles for minutes)"),
    kernels: str = typer.Option(None, help="fused | reference (default: fused where maskpot has a fused operator "
                                           "for the export, PaiNN's message step or the ase/openmm neighbour "
                                           "search, and its library is built; reference with --topology or "
                                           "--format aoti). A fused file needs maskpot's kernels library where it "
                                           "runs"),
) -> None:
    """Write a TorchScript file or AOTInductor package (energy + forces, metadata inside) for an MD engine."""
    import logging
    from pathlib import Path

    from rich.logging import RichHandler

    from maskpot.export import export_checkpoint, read_metadata
    from maskpot.export.metadata import kernels_of

    suffix = ".pt2" if export_format == "aoti" else ".pt"
    out = out or str(Path(checkpoint).with_suffix("")) + f"-{target}{suffix}"
    # the AOTInductor compile runs for minutes: show its stages as they start
    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    logger = logging.getLogger("maskpot.export")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        path = export_checkpoint(checkpoint, target, out, dtype=dtype, topology=topology, export_format=export_format,
                                 kernels=kernels)
    finally:
        logger.removeHandler(handler)
    meta = read_metadata(path)
    console.print(f"wrote {path} ({meta['backbone']}, {meta['model_kind']}, {meta['dtype']}, target {meta['target']}, "
                  f"{meta['export_format']}, {kernels_of(meta)} kernels)")


@app.command()
def info(model_file: str = typer.Argument(..., help="a file written by maskpot export")) -> None:
    """Print the metadata stored inside an exported model."""
    import json

    from rich.table import Table

    from maskpot.export import read_metadata
    from maskpot.export.metadata import kernels_of

    meta = read_metadata(model_file)
    meta["kernels"] = kernels_of(meta)
    table = Table(title=model_file, show_header=False)
    for key in ("target", "export_format", "backbone", "model_kind", "dtype", "kernels", "species_symbols", "cutoff_angstrom",
                "layers", "receptive_field_angstrom", "units", "versions", "checkpoint_name", "checkpoint_sha256", "training_data"):
        value = meta.get(key)
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    table.add_row("repulsion", _repulsion_text(ModelConfig.from_dict(meta["config"])))
    console.print(table)


@app.command()
def md(
    model_file: str = typer.Argument(..., help="exported model (--target openmm for OpenMM, lammps for LAMMPS)"),
    structure: str = typer.Option(..., "--structure", "-s", help="starting structure (any format maskpot reads)"),
    engine: str = typer.Option("openmm", help="openmm | lammps"),
    steps: int = typer.Option(MD.steps, help="MD steps"),
    timestep: float = typer.Option(MD.timestep_fs, help="time step, fs"),
    temperature: float = typer.Option(MD.temperature, help="K"),
    ensemble: str = typer.Option(MD.ensemble, help=" | ".join(ENSEMBLES) + ": the same thermostat in "
                                                         "either engine (maskpot/md.py)"),
    report_interval: int = typer.Option(MD.report_interval, help="steps between trajectory/thermo records"),
    out: str = typer.Option("md", help="output prefix: <out>.dcd and <out>.csv"),
    platform: str = typer.Option(MD.platform, help="OpenMM platform: CPU | Reference | CUDA"),
    nprocs: int = typer.Option(1, help="LAMMPS: MPI ranks"),
    seed: int = typer.Option(MD.seed),
    minimize: bool = typer.Option(False, help="OpenMM: relax the structure with the model before MD"),
) -> None:
    """Run MD with an exported model and print ns/day."""
    from rich.progress import Progress

    from maskpot.data import read
    from maskpot.data.checks import check_frames
    from maskpot.md import check_ensemble

    check_ensemble(ensemble)
    frame = read(structure)[0]
    check_frames([frame], labels=False)
    if engine == "openmm":
        from maskpot.openmm.md import run_openmm_md

        cfg = MDConfig(steps=steps, timestep_fs=timestep, temperature=temperature, ensemble=ensemble,
                       report_interval=report_interval, platform=platform, seed=seed)
        with Progress(console=console) as progress:
            task = progress.add_task(f"OpenMM {platform} MD", total=steps)
            progress.advance(task, 1)
            result = run_openmm_md(model_file, frame, cfg, out, progress=lambda n: progress.advance(task, n),
                                   minimize=minimize)
    elif engine == "lammps":
        from maskpot.lammps.md import run_lammps_md

        result = run_lammps_md(model_file, frame, steps=steps, timestep_fs=timestep, temperature=temperature,
                               ensemble=ensemble, report_interval=report_interval, out_prefix=out, nprocs=nprocs, seed=seed)
    else:
        raise ValueError(f"unknown engine {engine!r}; choose openmm or lammps")
    console.print(f"{engine} ({ensemble}): {result['atoms']} atoms, {result['steps']} steps, "
                  f"{result['ms_per_step']:.2f} ms/step, "
                  f"[bold]{result['ns_per_day']:.3f} ns/day[/bold]; thermo in {result['thermo']}")


# ---- lammps commands (maskpot lammps ...) --------------------------------------------------------------------


@lammps_app.command("plugin-path")
def lammps_plugin_path() -> None:
    """Print the path of the built pair_style maskpot plugin (for `plugin load` in a LAMMPS deck)."""
    from maskpot.lammps import plugin_path

    print(plugin_path())


@lammps_app.command("data")
def lammps_data(
    structure: str = typer.Argument(..., help="Structure file or folder (any format maskpot or ASE reads)."),
    out: str = typer.Option("water.data", "--out", "-o", help="LAMMPS data file to write."),
    species: str = typer.Option(..., "--species", "-s", help="Elements in LAMMPS type order, e.g. O,H (as in pair_coeff)."),
    index: int = typer.Option(0, "--index", "-i", help="Which frame of the file to write."),
) -> None:
    """Write one frame as a LAMMPS data file (atom_style atomic, Angstrom) with the type map in its header."""
    from maskpot.data import read
    from maskpot.lammps import write_data

    frames = read(structure)
    if not -len(frames) <= index < len(frames):
        raise ValueError(f"{structure}: frame {index} requested but it holds {len(frames)} frames")
    path = write_data(frames[index], out, species)
    console.print(f"wrote {path} ({len(frames[index])} atoms, types {species}) from {structure} frame {index}")


# Exceptions whose message is the whole story (bad input, unwritable output, a failed engine: torch's and
# OpenMM's errors included); any other type is a bug in maskpot, shown with its type name.
EXPECTED = (ValueError, OSError, RuntimeError, KeyError)
ENGINE_MODULES = ("torch", "openmm")


def error_text(exc: BaseException) -> str:
    """The one line ``main`` prints for ``exc`` (after "error: ")."""
    from maskpot.errors import first_line

    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    if isinstance(exc, EXPECTED) or type(exc).__module__.split(".")[0] in ENGINE_MODULES:
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc)} (a maskpot bug; MASKPOT_DEBUG=1 shows the traceback)"


def main() -> None:
    """Console entry point: run the app; every failure ends as one line on stderr and a non-zero exit status."""
    import click
    from rich.text import Text

    from maskpot.errors import Interrupted, first_line

    debug = os.environ.get("MASKPOT_DEBUG", "") not in ("", "0")
    interrupted = Text.assemble(("interrupted", "red"), " (Ctrl-C)")
    try:
        code = app(standalone_mode=False)  # typer turns a bare KeyboardInterrupt into exit status 130
    except Interrupted as exc:  # Ctrl-C caught by the library, which says what it kept
        err_console.print(Text.assemble(("interrupted:", "red"), " ", first_line(exc)))
        sys.exit(130)
    except (click.exceptions.Abort, KeyboardInterrupt):
        err_console.print(interrupted)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors: click's own message and status 2
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc()
        err_console.print(Text.assemble(("error:", "red"), " ", error_text(exc)))
        sys.exit(1)
    if code == 130:
        err_console.print(interrupted)
    sys.exit(code if isinstance(code, int) else 0)
