"""Data layer: frames, readers, splitting, molecules, neighbour lists, TIP3P reference data."""

from maskpot.data.frame import Frame

__all__ = ["Frame"]
