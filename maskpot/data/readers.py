"""Read structures with labels from files or folders into :class:`Frame` lists; write extended XYZ.

The reader is chosen from what the path is:

* a folder with ``type.raw``: one DeePMD npy system (``set.*/coord.npy`` etc., Angstrom / eV, box rows = cell vectors);
* a folder whose sub-folders are DeePMD systems: all of them, sorted by name;
* a file named ``input.data`` or starting with ``begin``: RuNNer/n2p2 format (atomic units, converted to Angstrom/eV);
* anything else: whatever ``ase.io.read(path, ":")`` understands (extxyz, ...), labels from the calculator.

Every frame gets ``source = "path#index"`` (index within the file or DeePMD system), used in error messages.
:func:`read` returns what the file holds; :func:`read_many` (what training and evaluation read with) also
refuses frames with non-finite values or overlapping atoms.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from maskpot.atomic import atomic_write
from maskpot.data.checks import check_frames
from maskpot.data.frame import Frame
from maskpot.data.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV
from maskpot.errors import first_line

__all__ = ["read", "read_many", "read_deepmd", "read_runner", "read_ase", "write_extxyz"]


def read(path: str | os.PathLike) -> list[Frame]:
    """Read every frame at ``path`` (file or folder), choosing the reader from what the path is."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "type.raw").is_file():
            return read_deepmd(path)
        systems = sorted(p for p in path.iterdir() if p.is_dir() and (p / "type.raw").is_file())
        if not systems:
            raise ValueError(f"{path}: folder is neither a DeePMD system (no type.raw) nor a folder of DeePMD systems")
        return [frame for system in systems for frame in read_deepmd(system)]
    if _looks_like_runner(path):
        return read_runner(path)
    return read_ase(path)


def read_many(paths: Iterable[str | os.PathLike]) -> list[Frame]:
    """Concatenate :func:`read` over several paths, in the order given, and refuse the first frame with a
    non-finite position, energy or force or overlapping atoms (``maskpot.data.checks``: one line naming the
    file, the frame and the atoms), so that training never starts on such data."""
    frames = [frame for path in paths for frame in read(path)]
    check_frames(frames)
    return frames


# ---- DeePMD npy systems ----------------------------------------------------------------------------------------

def _load_npy(file: Path) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False)
    except Exception as exc:  # truncated or not an npy file
        raise ValueError(f"{file}: cannot load npy array ({first_line(exc)})") from None


def read_deepmd(system: str | os.PathLike) -> list[Frame]:
    """One DeePMD npy system folder (``type.raw``, ``type_map.raw``, ``set.*/``); all sets in name order."""
    from ase.data import atomic_numbers

    system = Path(system)
    try:
        types = np.loadtxt(system / "type.raw", dtype=np.int64, ndmin=1)
    except ValueError as exc:
        raise ValueError(f"{system / 'type.raw'}: not a list of integer types ({first_line(exc)})") from None
    map_file = system / "type_map.raw"
    if not map_file.is_file():
        raise ValueError(f"{system}: DeePMD system has no type_map.raw, so element types are unknown")
    type_map = map_file.read_text().split()
    if types.size == 0 or types.min() < 0 or types.max() >= len(type_map):
        raise ValueError(f"{system / 'type.raw'}: type indices outside type_map.raw ({len(type_map)} entries)")
    unknown = [s for s in type_map if s not in atomic_numbers]
    if unknown:
        raise ValueError(f"{map_file}: unknown element symbol {unknown[0]!r}")
    numbers = np.array([atomic_numbers[type_map[t]] for t in types], dtype=np.int64)
    n_atoms = len(numbers)
    periodic = not (system / "nopbc").exists()
    sets = sorted(p for p in system.glob("set.*") if p.is_dir())
    if not sets:
        raise ValueError(f"{system}: DeePMD system has no set.* folders")

    frames: list[Frame] = []
    for set_dir in sets:
        coord_file = set_dir / "coord.npy"
        if not coord_file.is_file():
            raise FileNotFoundError(f"{coord_file}: missing")
        coords = _load_npy(coord_file)
        n_frames = coords.shape[0] if coords.ndim else 0
        coords = _check_shape(coords, (n_frames, n_atoms * 3), coord_file).reshape(n_frames, n_atoms, 3)
        boxes = energies = forces = None
        if periodic:
            box_file = set_dir / "box.npy"
            if not box_file.is_file():
                raise FileNotFoundError(f"{box_file}: missing (periodic DeePMD system; add a 'nopbc' file if not periodic)")
            boxes = _check_shape(_load_npy(box_file), (n_frames, 9), box_file).reshape(n_frames, 3, 3)
        if (set_dir / "energy.npy").is_file():
            energies = _check_shape(_load_npy(set_dir / "energy.npy"), (n_frames,), set_dir / "energy.npy")
        if (set_dir / "force.npy").is_file():
            forces = _check_shape(_load_npy(set_dir / "force.npy"), (n_frames, n_atoms * 3), set_dir / "force.npy")
            forces = forces.reshape(n_frames, n_atoms, 3)
        for k in range(n_frames):
            source = f"{system}#{len(frames)}"
            cell = None
            if boxes is not None:
                cell = boxes[k]
                if abs(np.linalg.det(cell)) < 1e-8:
                    raise ValueError(f"{source}: periodic frame has no cell (box.npy row is degenerate)")
            frames.append(Frame(positions=coords[k], numbers=numbers, cell=cell, pbc=periodic,
                                energy=None if energies is None else energies[k],
                                forces=None if forces is None else forces[k], source=source))
    return frames


def _check_shape(array: np.ndarray, shape: tuple[int, ...], file: Path) -> np.ndarray:
    """Reshape ``array`` to ``shape`` (allowing e.g. (F, 1) for (F,)), or raise naming the file."""
    if array.size != int(np.prod(shape)) or (array.ndim and array.shape[0] != shape[0]):
        raise ValueError(f"{file}: array shape {array.shape} does not match expected {shape}")
    return np.asarray(array, dtype=np.float64).reshape(shape)


# ---- RuNNer / n2p2 input.data ----------------------------------------------------------------------------------

def _looks_like_runner(path: Path) -> bool:
    if path.name == "input.data":
        return True
    try:
        with open(path, "r", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    return line.split()[0].lower() == "begin"
    except OSError:
        return False
    return False


def read_runner(path: str | os.PathLike) -> list[Frame]:
    """RuNNer/n2p2 ``input.data``: blocks ``begin / comment / lattice x3 / atom ... / energy / charge / end``.

    Atom lines are ``atom x y z element charge atomic_energy fx fy fz`` in Bohr and Hartree/Bohr; ``energy`` is in
    Hartree. Everything is converted to Angstrom, eV and eV/Angstrom (constants from :mod:`maskpot.data.units`).
    """
    from ase.data import atomic_numbers

    path = Path(path)
    frames: list[Frame] = []
    block: dict | None = None
    with open(path, "r") as fh:
        for lineno, raw in enumerate(fh, start=1):
            fields = raw.split()
            if not fields:
                continue
            key = fields[0].lower()
            where = f"{path}#{len(frames)} (line {lineno})"
            if key == "begin":
                if block is not None:
                    raise ValueError(f"{where}: 'begin' before the previous structure's 'end' (truncated structure)")
                block = {"lattice": [], "positions": [], "numbers": [], "forces": [], "energy": None}
                continue
            if block is None:
                raise ValueError(f"{where}: {fields[0]!r} outside a begin/end block")
            try:
                if key == "lattice":
                    block["lattice"].append([float(x) for x in fields[1:4]])
                elif key == "atom":
                    if len(fields) < 10:
                        raise ValueError(f"atom line has {len(fields)} fields, expected 10")
                    if fields[4] not in atomic_numbers:
                        raise ValueError(f"unknown element {fields[4]!r}")
                    block["positions"].append([float(x) for x in fields[1:4]])
                    block["numbers"].append(atomic_numbers[fields[4]])
                    block["forces"].append([float(x) for x in fields[7:10]])
                elif key == "energy":
                    block["energy"] = float(fields[1])
                elif key == "end":
                    frames.append(_runner_frame(block, f"{path}#{len(frames)}"))
                    block = None
                elif key not in ("comment", "charge"):
                    raise ValueError(f"unknown keyword {fields[0]!r}")
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{where}: {first_line(exc)}") from None
    if block is not None:
        raise ValueError(f"{path}#{len(frames)}: structure has no 'end' (file truncated?)")
    if not frames:
        raise ValueError(f"{path}: no structures found in RuNNer file")
    return frames


def _runner_frame(block: dict, source: str) -> Frame:
    if not block["positions"]:
        raise ValueError(f"{source}: structure has no atoms")
    if len(block["lattice"]) not in (0, 3):
        raise ValueError(f"{source}: {len(block['lattice'])} lattice lines, expected 3 (or 0 if not periodic)")
    cell = np.array(block["lattice"]) * BOHR_TO_ANGSTROM if block["lattice"] else None
    energy = None if block["energy"] is None else block["energy"] * HARTREE_TO_EV
    return Frame(positions=np.array(block["positions"]) * BOHR_TO_ANGSTROM, numbers=block["numbers"], cell=cell,
                 pbc=cell is not None, energy=energy,
                 forces=np.array(block["forces"]) * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, source=source)


# ---- anything ASE reads ----------------------------------------------------------------------------------------

def read_ase(path: str | os.PathLike, format: str | None = None) -> list[Frame]:
    """Every image ``ase.io.read(path, ":")`` returns, labels taken from the attached calculator."""
    import ase.io
    from ase.io.formats import filetype, ioformats

    path = Path(path)
    if format is None:
        try:
            format = filetype(str(path), guess=True)
        except Exception as exc:  # ASE raises several types when it cannot tell the format
            raise ValueError(f"{path}: unknown format ({first_line(exc)})") from None
        if format not in ioformats:  # filetype() falls back to the file extension without checking it
            raise ValueError(f"{path}: unknown format {format!r} (not DeePMD, RuNNer, or a format ASE reads)")
    try:
        images = ase.io.read(path, index=":", format=format)
    except Exception as exc:  # ASE raises many types for corrupt/truncated files; report one line
        raise ValueError(f"{path}: cannot read as {format} ({type(exc).__name__}: {first_line(exc)})") from None
    if not images:
        raise ValueError(f"{path}: no structures found")
    return [Frame.from_atoms(atoms, source=f"{path}#{k}") for k, atoms in enumerate(images)]


def write_extxyz(frames: Sequence[Frame], path: str | os.PathLike) -> Path:
    """Write frames (with energies/forces) as extended XYZ, atomically (temp file in the same folder + rename)."""
    import ase.io

    return atomic_write(path, lambda tmp: ase.io.write(tmp, [f.to_atoms() for f in frames], format="extxyz"))
