"""Shared pytest fixtures. Keep each fixture clearly named for what it provides; areas add their own below."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


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
