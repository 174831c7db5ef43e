"""Data layer: frames, readers, splitting, molecules, neighbour lists, TIP3P reference data.

The names below load their module on first use (PEP 562), so that importing one light module of the package
(``maskpot.data.frame``, ``maskpot.data.tip3p``) does not import torch: ``maskpot --help`` reads the defaults of
``generate_tip3p`` and stays fast.
"""

import importlib

_HOMES = {"Frame": "frame", "read": "readers", "read_many": "readers", "write_extxyz": "readers",
          "split_frames": "split", "summary": "summary"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        # cached here, so that the function ``summary`` stays bound over its module of the same name
        value = globals()[name] = getattr(importlib.import_module(f"maskpot.data.{_HOMES[name]}"), name)
        return value
    raise AttributeError(f"module 'maskpot.data' has no attribute {name!r}")
