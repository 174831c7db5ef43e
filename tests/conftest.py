"""Shared pytest fixtures. Keep each fixture clearly named for what it provides; areas add their own below."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# pytest-xdist's workers set COLUMNS=80, which rich would fix as the width of the CLI's console at import; without
# it the console reads COLUMNS per call, so a test that reads a CLI table sets the width it needs (CliRunner env)
os.environ.pop("COLUMNS", None)


# ---- the two stacks (README "Install") ------------------------------------------------------------------------

def pytest_runtest_setup(item):
    """Tests marked openmm_torch skip on the current stack (setup.sh runs it with MASKPOT_STACK=current), which has
    no openmmtorch; anywhere else they run, and fail if openmmtorch is missing, so the pinned stack skips nothing."""
    if (item.get_closest_marker("openmm_torch") and os.environ.get("MASKPOT_STACK") == "current"
            and importlib.util.find_spec("openmmtorch") is None):
        pytest.skip("openmmtorch is not part of the current stack (requirements-current.txt)")


# ---- parallel runs (pytest-xdist, ``-n 2 --dist loadgroup`` in setup.sh) ------------------------------------------

# Fixtures that cost tens of seconds each (a training run, AOTInductor compiles): every test that uses one runs on
# the same worker, so that it is made once per run and not once per worker. They are session-scoped: a worker
# does not run a group's tests back to back, and a module-scoped fixture would be made again on each return.
COSTLY_FIXTURES = ("trained_water_checkpoint", "package")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in COSTLY_FIXTURES:
            defs = getattr(item, "_fixtureinfo", None) and item._fixtureinfo.name2fixturedefs.get(name)
            if defs:  # one group per definition (two modules may each define a fixture of that name)
                item.add_marker(pytest.mark.xdist_group(f"{name}@{defs[-1].baseid}"))
                break


# ---- data fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The public reference data (``../shared/data`` from the repo root); tests using it skip if it is missing."""
    path = REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path}")
    return path


@pytest.fixture(scope="session")
def tip3p_water_frames():
    """A tiny flexible-TIP3P set generated once per session: 32 H2O in a 10 A box, 3 frames (O,H,H order)."""
    from maskpot.data.tip3p import generate_tip3p

    return generate_tip3p(n_molecules=32, box=10.0, temperature=300.0, n_frames=3, interval=20,
                          equilibration_steps=100, seed=1)


# ---- model / export fixtures -----------------------------------------------------------------------------------

def water_atoms_box(n_molecules: int = 64, box: float = 12.44, seed: int = 0):
    """ASE Atoms: a periodic liquid-density water box made here (no external files), O,H,H order."""
    import numpy as np
    from ase import Atoms

    from maskpot.data.tip3p import water_box_positions

    positions = water_box_positions(n_molecules, box, np.random.default_rng(seed))
    return Atoms(numbers=[8, 1, 1] * n_molecules, positions=positions, cell=np.eye(3) * box, pbc=True)


@pytest.fixture(scope="session")
def water_atoms():
    return water_atoms_box()


# A: switched on below the typical intermolecular distances of liquid water, so most O-O and many O-H / H-H pairs feel it
REPULSION_IN_WATER = {"1-1": 2.2, "1-8": 2.0, "8-8": 3.2}


def make_checkpoint(path: Path, backbone: str = "painn", dtype: str = "float64", hidden: int = 16, layers: int = 2,
                    cutoff: float = 4.0, seed: int = 0) -> Path:
    """A finetuned-kind checkpoint of an untrained (random-weight) tiny model: enough to compare numbers across
    deployment paths, which must agree for any weights. ``backbone`` "painn-rep" is a PaiNN with the short-range
    repulsion (maskpot.models.repulsion) switched on at distances where a liquid water box has many pairs."""
    import torch

    from maskpot.models import ModelConfig, build_potential
    from maskpot.train.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    name, _, extra = backbone.partition("-")
    repulsion = REPULSION_IN_WATER if extra == "rep" else None
    config = ModelConfig(backbone=name, species=[1, 8], cutoff=cutoff, hidden=hidden, layers=layers,
                         num_rbf=8, dtype=dtype, avg_neighbors=32.0, repulsion=repulsion)
    potential = build_potential(config)
    # Water-like normalisation so energies have realistic magnitudes (eV per atom shift, eV scale).
    potential.energy_shift.copy_(torch.tensor([-13.6, -430.0], dtype=potential.energy_shift.dtype))
    potential.output_scale.fill_(0.5)
    save_checkpoint(path, potential, config, kind="finetuned", normalization={}, data_summary={"train": {"periodic": "all"}},
                    metrics={})
    return path


@pytest.fixture(scope="session")
def checkpoint_factory(tmp_path_factory):
    """checkpoint_factory(backbone='painn', dtype='float64', layers=2) -> path of a tiny finetuned-kind checkpoint."""
    cache: dict = {}

    def get(backbone: str = "painn", dtype: str = "float64", layers: int = 2) -> Path:
        if (backbone, dtype, layers) not in cache:
            out = tmp_path_factory.mktemp("ckpt") / f"{backbone}-{dtype}-{layers}.ckpt"
            cache[backbone, dtype, layers] = make_checkpoint(out, backbone, dtype, layers=layers)
        return cache[backbone, dtype, layers]

    return get


@pytest.fixture(scope="session")
def export_factory(checkpoint_factory, tmp_path_factory):
    """export_factory(target, backbone='painn', dtype='float64', kernels=None) -> path of an exported file
    (kernels None: the export's default, see maskpot.export.writer.default_kernels)."""
    from maskpot.export import export_checkpoint

    cache: dict = {}

    def get(target: str, backbone: str = "painn", dtype: str = "float64", kernels: str | None = None) -> Path:
        key = (target, backbone, dtype, kernels)
        if key not in cache:
            out = tmp_path_factory.mktemp("export") / f"{backbone}-{dtype}-{target}-{kernels or 'default'}.pt"
            cache[key] = export_checkpoint(checkpoint_factory(backbone, dtype), target, out, kernels=kernels)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def trained_water_checkpoint(tmp_path_factory):
    """A tiny PaiNN (float64) finetuned for a few seconds on self-generated flexible-TIP3P frames: it has learned
    the O-H bonds, so MD with it is a real test of energy conservation (a random-weight model is not)."""
    from maskpot.data.tip3p import generate_tip3p
    from maskpot.models import ModelConfig
    from maskpot.train.config import FinetuneConfig
    from maskpot.train.finetune import finetune

    frames = generate_tip3p(n_molecules=32, box=10.0, temperature=300.0, n_frames=12, interval=20,
                            equilibration_steps=100, seed=3)
    out = tmp_path_factory.mktemp("trained") / "tip3p-painn.ckpt"
    config = ModelConfig(backbone="painn", species=[1, 8], cutoff=4.0, hidden=16, layers=2, num_rbf=8, dtype="float64",
                         avg_neighbors=32.0)
    finetune(frames, out, FinetuneConfig(max_steps=120, eval_every=10, patience=12, batch_size=4, lr=5e-3,
                                         ema_decay=0.0, val_fraction=0.17), model_config=config)
    return out
