"""Fixtures for the LAMMPS plugin tests: the built plugin (a clear failure if missing) and the toy TorchScript
model (an export without the layer-wise interface). Real exports come from tests/conftest.py's export_factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskpot.lammps import plugin_path


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
