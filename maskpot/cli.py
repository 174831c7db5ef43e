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
