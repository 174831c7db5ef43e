"""OpenMM adapter: ``create_force`` (an openmm-torch ``TorchForce`` from an export), ``write_pdb`` (a structure
as a PDB file OpenMM reads atom for atom) and the OpenMM-ML plugin.

This package's ``__init__`` stays import-light: OpenMM-ML imports the ``maskpot`` entry point at
``import openmmml``, and a failure there would break every OpenMM-ML user.
"""


def create_force(*args, **kwargs):
    """See :func:`maskpot.openmm.force.create_force`."""
    from maskpot.openmm.force import create_force as _create_force

    return _create_force(*args, **kwargs)


def write_pdb(*args, **kwargs):
    """See :func:`maskpot.openmm.system.write_pdb`."""
    from maskpot.openmm.system import write_pdb as _write_pdb

    return _write_pdb(*args, **kwargs)


__all__ = ["create_force", "write_pdb"]
