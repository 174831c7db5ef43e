"""Data layer: frames, readers, splitting, molecules, neighbour lists, TIP3P reference data."""

from maskpot.data.frame import Frame
from maskpot.data.readers import read, read_many, write_extxyz
from maskpot.data.split import split_frames
from maskpot.data.summary import summary

__all__ = ["Frame", "read", "read_many", "write_extxyz", "split_frames", "summary"]
