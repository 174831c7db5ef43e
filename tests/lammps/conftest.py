"""Fixtures for the LAMMPS plugin tests: the built plugin (a clear failure if missing), the toy TorchScript
models, and small water boxes written as LAMMPS data files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from maskpot.lammps import plugin_path, write_data

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEEPMD_FRAME_DIR = ROOT.parent / "shared" / "data" / "water" / "deepmd_water" / "data_0"


def generated_water(n_side: int = 4, spacing: float = 3.11, seed: int = 0) -> Atoms:
    """n_side**3 waters on a jittered grid, random orientations, cubic periodic box (liquid-like density)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    half = np.deg2rad(104.52) / 2
    local = 0.9572 * np.array([[0, 0, 0], [np.sin(half), 0, np.cos(half)], [-np.sin(half), 0, np.cos(half)]])
    positions = []
    for idx in np.ndindex(n_side, n_side, n_side):
        center = (np.array(idx) + 0.5) * spacing + rng.normal(scale=0.1, size=3)
        positions.extend(center + local @ Rotation.random(random_state=rng.integers(1 << 31)).as_matrix().T)
    return Atoms(numbers=[8, 1, 1] * n_side**3, positions=positions, cell=np.eye(3) * n_side * spacing, pbc=True)


def disordered_water(seed: int = 0) -> Atoms:
    """The generated box with each molecule moved by up to 1.5 A per axis: no lattice gaps at the box faces."""
    atoms = generated_water()
    shifts = np.random.default_rng(seed).uniform(-1.5, 1.5, size=(len(atoms) // 3, 3))
    atoms.positions += np.repeat(shifts, 3, axis=0)
    return atoms


def deepmd_water() -> Atoms | None:
    """Frame 0 of the DeePMD water set (64 H2O, atoms ordered 64 O then 128 H), or None without ../shared."""
    if not (DEEPMD_FRAME_DIR / "type.raw").is_file():
        return None
    types = np.loadtxt(DEEPMD_FRAME_DIR / "type.raw", dtype=int)
    coord = np.load(DEEPMD_FRAME_DIR / "set.000" / "coord.npy")[0].reshape(-1, 3)
    box = np.load(DEEPMD_FRAME_DIR / "set.000" / "box.npy")[0].reshape(3, 3)
    return Atoms(numbers=np.where(types == 0, 8, 1), positions=coord, cell=box, pbc=True)


def triclinic(atoms: Atoms) -> Atoms:
    """The same box sheared into a lower-triangular (LAMMPS-orientation) triclinic cell, fractional coords kept."""
    length = atoms.cell[0, 0]
    cell = np.array([[length, 0, 0], [0.21 * length, length, 0], [-0.13 * length, 0.17 * length, length]])
    out = atoms.copy()
    out.set_cell(cell, scale_atoms=True)
    return out


@pytest.fixture(scope="session")
def plugin() -> Path:
    try:
        return plugin_path()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}; the LAMMPS tests need the plugin (CI builds it through setup.sh)", pytrace=False)


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory) -> Path:
    from toymodel import save_toy_model

    return save_toy_model(tmp_path_factory.mktemp("toy") / "toy-lammps.pt")


@pytest.fixture(scope="session")
def toy_model_openmm(tmp_path_factory) -> Path:
    from toymodel import save_toy_model

    return save_toy_model(tmp_path_factory.mktemp("toy") / "toy-openmm.pt", target="openmm")


@pytest.fixture(scope="session", params=["deepmd", "generated"])
def water(request) -> Atoms:
    """The DeePMD frame when ../shared is there (else the generated box), and always the generated box."""
    atoms = deepmd_water() if request.param == "deepmd" else None
    return atoms if atoms is not None else generated_water()


@pytest.fixture(scope="session")
def water_data(tmp_path_factory) -> tuple[Atoms, Path]:
    """(atoms, LAMMPS data file) of one water box, for the command-line tests."""
    atoms = deepmd_water() or generated_water()
    return atoms, write_data(atoms, tmp_path_factory.mktemp("data") / "water.data", "O,H")
