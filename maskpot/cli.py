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

# ---- lammps commands (maskpot lammps ...) --------------------------------------------------------------------


def main() -> None:
    """Console entry point: run the app, turning bad-input exceptions into one-line errors."""
    try:
        app(standalone_mode=False)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors etc.
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
