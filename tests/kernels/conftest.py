"""Every test here needs maskpot's kernels library (built by lammps/build.sh) registered in the process."""

import pytest

from maskpot import kernels


@pytest.fixture(scope="module", autouse=True)
def _library():
    if not kernels.available():
        pytest.fail(f"{kernels.library_path()} is not built (bash lammps/build.sh; setup.sh builds it)",
                    pytrace=False)
    kernels.load()
