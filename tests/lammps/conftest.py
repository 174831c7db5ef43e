"""Fixtures for the LAMMPS plugin tests: the built plugin (a clear failure if missing), the toy TorchScript
models, and small water boxes written as LAMMPS data files."""

from __future__ import annotations

from pathlib import Path

import pytest
from ase import Atoms

from maskpot.lammps import plugin_path, write_data
from water_structures import deepmd_water, generated_water

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
