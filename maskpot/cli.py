"""The ``maskpot`` command line. Thin: parse options, call library functions, print with rich.

Errors from library code (``MaskpotError`` and ``ValueError``/``FileNotFoundError`` raised for bad input) are
shown as one red line and exit status 1, never as a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="maskpot: masked pretraining -> finetuning -> export -> MD.")
data_app = typer.Typer(no_args_is_help=True, help="Read, inspect and generate data sets.")
lammps_app = typer.Typer(no_args_is_help=True, help="LAMMPS plugin helpers.")
app.add_typer(data_app, name="data")
app.add_typer(lammps_app, name="lammps")
console = Console()

# ---- data commands (maskpot data ...) ------------------------------------------------------------------------


@data_app.command("tip3p")
def data_tip3p(
    out: str = typer.Option(..., "--out", help="Output extended XYZ file."),
    molecules: int = typer.Option(258, "--molecules", help="Number of water molecules."),
    box: float = typer.Option(20.0, "--box", help="Cubic box edge, Angstrom."),
    temperature: float = typer.Option(300.0, "--temperature", help="Kelvin."),
    frames: int = typer.Option(100, "--frames", help="Frames to save."),
    interval: int = typer.Option(50, "--interval", help="MD steps between saved frames."),
    timestep: float = typer.Option(0.5, "--timestep", help="fs."),
    equilibration: int = typer.Option(2000, "--equilibration", help="MD steps before the first frame."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Generate flexible-TIP3P water frames with OpenMM (energies in eV, forces in eV/A) into an extxyz file."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from maskpot.data import summary, write_extxyz
    from maskpot.data.tip3p import generate_tip3p

    with Progress(TextColumn("[bold]TIP3P MD"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("md", total=equilibration + frames * interval)
        result = generate_tip3p(n_molecules=molecules, box=box, temperature=temperature, n_frames=frames,
                                interval=interval, timestep=timestep, seed=seed, equilibration_steps=equilibration,
                                progress=lambda done, total: bar.update(task, completed=done))
    path = write_extxyz(result, out)
    info = summary(result)
    console.print(f"wrote {path}: {info['n_frames']} frames of {info['n_atoms_max']} atoms ({molecules} H2O, "
                  f"{box:g} A box, {temperature:g} K), energy/atom {info['energy_per_atom_mean']:.4f} eV, "
                  f"force RMS {info['force_rms']:.3f} eV/A")


@data_app.command("info")
def data_info(paths: list[str] = typer.Argument(..., help="Files or folders to read.")) -> None:
    """Read each path and print a summary table (frames, atoms, species, label statistics)."""
    from rich.table import Table

    from maskpot.data import read, summary

    for path in paths:
        info = summary(read(path))
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

# ---- training commands (pretrain, finetune, evaluate) --------------------------------------------------------

# ---- export commands (export, info) and md -------------------------------------------------------------------


@app.command()
def export(
    checkpoint: str = typer.Argument(..., help="finetuned checkpoint (.ckpt)"),
    target: str = typer.Option(..., "--target", "-t", help="openmm | lammps | ase"),
    out: str = typer.Option(None, "--out", "-o", help="output file (default: <checkpoint>-<target>.pt)"),
    dtype: str = typer.Option(None, help="float32 | float64 (default: the checkpoint's)"),
    topology: str = typer.Option(None, help="OpenMM only: structure whose atomic numbers are baked in"),
) -> None:
    """Write a TorchScript file (energy + forces, metadata inside) for an MD engine."""
    from pathlib import Path

    from maskpot.export import export_checkpoint, read_metadata

    out = out or str(Path(checkpoint).with_suffix("")) + f"-{target}.pt"
    path = export_checkpoint(checkpoint, target, out, dtype=dtype, topology=topology)
    meta = read_metadata(path)
    console.print(f"wrote {path} ({meta['backbone']}, {meta['model_kind']}, {meta['dtype']}, target {meta['target']})")


@app.command()
def info(model_file: str = typer.Argument(..., help="a file written by maskpot export")) -> None:
    """Print the metadata stored inside an exported model."""
    import json

    from rich.table import Table

    from maskpot.export import read_metadata

    meta = read_metadata(model_file)
    table = Table(title=model_file, show_header=False)
    for key in ("target", "backbone", "model_kind", "dtype", "species_symbols", "cutoff_angstrom", "layers",
                "receptive_field_angstrom", "units", "versions", "checkpoint_name", "checkpoint_sha256", "training_data"):
        value = meta.get(key)
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    console.print(table)


@app.command()
def md(
    model_file: str = typer.Argument(..., help="exported model (--target openmm for OpenMM, lammps for LAMMPS)"),
    structure: str = typer.Option(..., "--structure", "-s", help="starting structure (any format maskpot reads)"),
    engine: str = typer.Option("openmm", help="openmm | lammps"),
    steps: int = typer.Option(1000, help="MD steps"),
    timestep: float = typer.Option(0.5, help="time step, fs"),
    temperature: float = typer.Option(300.0, help="K"),
    ensemble: str = typer.Option("nvt", help="nvt (Langevin) | nve"),
    report_interval: int = typer.Option(10, help="steps between trajectory/thermo records"),
    out: str = typer.Option("md", help="output prefix: <out>.dcd and <out>.csv"),
    platform: str = typer.Option("CPU", help="OpenMM platform: CPU | Reference | CUDA"),
    nprocs: int = typer.Option(1, help="LAMMPS: MPI ranks"),
    seed: int = typer.Option(0),
) -> None:
    """Run MD with an exported model and print ns/day."""
    from rich.progress import Progress

    from maskpot.data import read

    frame = read(structure)[0]
    if engine == "openmm":
        from maskpot.openmm.md import MDConfig, run_openmm_md

        cfg = MDConfig(steps=steps, timestep_fs=timestep, temperature=temperature, ensemble=ensemble,
                       report_interval=report_interval, platform=platform, seed=seed)
        with Progress(console=console) as progress:
            task = progress.add_task(f"OpenMM {platform} MD", total=steps)
            progress.advance(task, 1)
            result = run_openmm_md(model_file, frame, cfg, out, progress=lambda n: progress.advance(task, n))
    elif engine == "lammps":
        from maskpot.lammps.md import run_lammps_md

        result = run_lammps_md(model_file, frame, steps=steps, timestep_fs=timestep, temperature=temperature,
                               ensemble=ensemble, report_interval=report_interval, out_prefix=out, nprocs=nprocs, seed=seed)
    else:
        raise ValueError(f"unknown engine {engine!r}; choose openmm or lammps")
    console.print(f"{engine}: {result['atoms']} atoms, {result['steps']} steps, {result['ms_per_step']:.2f} ms/step, "
                  f"[bold]{result['ns_per_day']:.3f} ns/day[/bold]; thermo in {result['thermo']}")


# ---- lammps commands (maskpot lammps ...) --------------------------------------------------------------------


def main() -> None:
    """Console entry point: run the app, turning bad-input exceptions into one-line errors."""
    try:
        app(standalone_mode=False)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors etc.
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
