"""maskpot's hand-written torch operators (``torch.ops.maskpot.*``, C++ in maskpot/kernels/csrc) and the switch
between them and the reference (pure torch) implementation of the layers they replace.

The operators live in ``libmaskpot_kernels.so``, which ``lammps/build.sh`` (run by setup.sh) builds next to the
LAMMPS plugin, which links it. ``load()`` registers them in this process; an exported
TorchScript file made with ``kernels="fused"`` needs that before ``torch.jit.load`` (maskpot's ASE and OpenMM
loaders and the LAMMPS plugin do it), one made with ``kernels="reference"`` loads with plain torch.

Kernels: ``"reference"`` (the layers as trained: differentiable to any order) or ``"fused"`` (inference only:
first derivatives with respect to the inputs, which forces need, and no gradient for the weights). Operators:
``painn_message``, ``painn_update`` and ``edge_basis`` (PaiNN's message and update steps and edge features,
maskpot.kernels.painn), ``egnn_message`` (EGNN's edge step, maskpot.kernels.egnn), ``gns_encode``, ``gns_edge``
and ``gns_decode`` (GNS's edge encoder, edge update and decoder, forward only, maskpot.kernels.gns) and
``neighbor_pairs``, the neighbour search of ASE and OpenMM exports (maskpot.kernels.neighbors; not
differentiable, its positions are detached).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

KERNELS = ("fused", "reference")
LIBRARY_ENV = "MASKPOT_KERNELS_LIB"
LIBRARY_NAME = "libmaskpot_kernels.so"
log = logging.getLogger(__name__)


def library_path() -> Path:
    """``$MASKPOT_KERNELS_LIB``, or the library lammps/build.sh builds next to the LAMMPS plugin (the folder of
    this torch release, maskpot.lammps.plugin: like the plugin, it links the libtorch it was built against)."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env)
    from maskpot.lammps.plugin import PLUGIN_ENV, build_dir

    override = os.environ.get(PLUGIN_ENV)
    folder = Path(override).expanduser().resolve().parent if override else build_dir()
    return folder / LIBRARY_NAME


def loaded() -> bool:
    """Whether the operators are registered in this process (by ``load()`` or by a library that links them)."""
    try:
        torch.ops.maskpot.painn_message  # noqa: B018 (the attribute lookup is the test)
    except (AttributeError, RuntimeError):
        return False
    return True


def available() -> bool:
    """Whether the operators are registered or their library is built."""
    return loaded() or library_path().is_file()


def load() -> None:
    """Register the operators in this process (idempotent); a one-line RuntimeError when the library is missing."""
    if loaded():
        return
    path = library_path()
    if not path.is_file():
        raise RuntimeError(f"maskpot kernels library {path} not built: run bash lammps/build.sh "
                           f"(or export with --kernels reference)")
    torch.ops.load_library(str(path))
    log.debug("loaded maskpot kernels from %s", path)


def check_kernels(kernels: str) -> None:
    if kernels not in KERNELS:
        raise ValueError(f"unknown kernels {kernels!r}; choose one of {', '.join(KERNELS)}")
