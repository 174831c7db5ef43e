"""Running ``lmp`` (or ``mpirun -np N lmp``) on an input deck and reading its thermo output."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskpot.errors import first_line
from maskpot.lammps.plugin import engine_environment, executable


@dataclass
class LammpsRun:
    """What one ``lmp`` invocation printed.

    Attributes:
        thermo: one dict per ``run``/``minimize`` section, column name (``Step``, ``PotEng``, ...) -> values,
            in the deck's units.
        log: the whole standard output.
    """

    thermo: list[dict[str, np.ndarray]] = field(default_factory=list)
    log: str = ""

    @property
    def last(self) -> dict[str, np.ndarray]:
        """Thermo columns of the last run section."""
        if not self.thermo:
            raise ValueError("LAMMPS printed no thermo output")
        return self.thermo[-1]


def _as_float(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def parse_thermo(text: str) -> list[dict[str, np.ndarray]]:
    """Thermo tables of a LAMMPS log: a header line starting with ``Step`` then numeric rows, up to ``Loop time``.
    Other lines inside a table (warnings) are skipped."""
    sections: list[dict[str, np.ndarray]] = []
    header: list[str] | None = None
    rows: list[list[float]] = []
    for line in text.splitlines():
        tokens = line.split()
        if tokens and tokens[0] == "Step":
            header, rows = tokens, []
        elif header is not None and line.startswith("Loop time"):
            table = np.array(rows, dtype=np.float64).reshape(-1, len(header))
            sections.append({name: table[:, k] for k, name in enumerate(header)})
            header = None
        elif header is not None and len(tokens) == len(header):
            values = [_as_float(t) for t in tokens]
            if all(v is not None for v in values):
                rows.append(values)
    return sections


def _error_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("ERROR"):
            return line.strip()
    return None


def run_lammps(deck: str | os.PathLike, nprocs: int = 1, variables: dict[str, object] | None = None,
               cwd: str | os.PathLike | None = None, timeout: float | None = None,
               threads: int | None = None) -> LammpsRun:
    """Run a LAMMPS input (a path, or the input text itself if ``deck`` is a str with a newline) with the venv's
    ``lmp``, through ``mpirun -np nprocs`` when nprocs > 1. ``variables`` become ``-var name value``;
    ``threads``: torch threads per rank (default: OMP_NUM_THREADS or all cores, capped at cores / nprocs).

    Raises RuntimeError with LAMMPS' ERROR line, the message the model raised, or the exit status when the run
    fails.
    """
    with tempfile.TemporaryDirectory() as scratch:
        if isinstance(deck, str) and "\n" in deck:
            path = Path(scratch) / "in.maskpot"
            path.write_text(deck)
        else:
            path = Path(deck).resolve()
            if not path.is_file():
                raise FileNotFoundError(f"{deck}: no such LAMMPS input file")
        command = [executable("lmp"), "-in", str(path), "-log", "none", "-nocite"]
        for name, value in (variables or {}).items():
            command += ["-var", str(name), str(value)]
        if nprocs > 1:
            command = [executable("mpirun"), "-np", str(nprocs)] + command
        done = subprocess.run(command, cwd=cwd, env=engine_environment(nprocs, threads), capture_output=True, text=True,
                              timeout=timeout)
    output = done.stdout + done.stderr
    error = _error_line(output)
    if error is not None:
        raise RuntimeError(f"LAMMPS failed: {error}")
    if done.returncode != 0 and "TorchScript" in output:  # the model raised: its message, not the traceback
        raise RuntimeError(f"LAMMPS failed: {first_line(output)}")
    if done.returncode != 0:
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise RuntimeError(f"LAMMPS exited with status {done.returncode}: {tail}")
    return LammpsRun(thermo=parse_thermo(done.stdout), log=done.stdout)
