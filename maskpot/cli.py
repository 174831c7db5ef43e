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

# ---- training commands (pretrain, finetune, evaluate) --------------------------------------------------------

# ---- export commands (export, info) and md -------------------------------------------------------------------

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
    from maskpot.lammps import write_data
    from maskpot.lammps.datafile import read_frames

    frames = read_frames(structure)
    if not -len(frames) <= index < len(frames):
        raise ValueError(f"{structure}: frame {index} requested but it holds {len(frames)} frames")
    path = write_data(frames[index], out, species)
    console.print(f"wrote {path} ({len(frames[index])} atoms, types {species}) from {structure} frame {index}")


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
