"""Export: checkpoints -> self-describing TorchScript files for OpenMM, LAMMPS and ASE."""

from maskpot.export.metadata import read_metadata
from maskpot.export.writer import TARGETS, export_checkpoint

__all__ = ["TARGETS", "export_checkpoint", "read_metadata"]
