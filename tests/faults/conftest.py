"""Helpers for the fault tests: run the CLI as a user does, and check the three promises of a failure (exit
status, one line naming the problem, nothing half-written left)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd=None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m maskpot ARGS`` in a fresh interpreter, as a user runs it."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), COLUMNS="200")
    full_env.pop("MASKPOT_DEBUG", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "maskpot", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=300)


def assert_one_line(res: subprocess.CompletedProcess, *fragments: str, code: int = 1, prefix: str = "error: ") -> str:
    """Exit status ``code``, exactly one non-empty line on stderr starting with ``prefix`` and holding every
    fragment, and no traceback; returns that line."""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == code, (res.returncode, res.stderr[-3000:])
    assert len(lines) == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    line = lines[0]
    assert line.startswith(prefix), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def leftovers(folder: Path) -> list[str]:
    """Temporary and lock files left in ``folder`` (there must be none after any run, failed or not)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith((".tmp", ".lock")))


@pytest.fixture
def readonly_dir(tmp_path) -> Path:
    """A folder this process cannot write into: a chmod 555 folder, or for root (whom permissions do not
    stop) a folder of sysfs, which nobody can create files in."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        yield folder
        folder.chmod(0o755)
        return
    sysfs = Path("/sys/kernel")
    try:
        (sysfs / "maskpot-probe.tmp").open("w").close()
    except OSError:
        yield sysfs
        return
    pytest.skip("no folder this process cannot write into")
