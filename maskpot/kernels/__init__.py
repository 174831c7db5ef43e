"""maskpot's hand-written torch operators (``torch.ops.maskpot.*``, C++ in maskpot/kernels/csrc) and the switch
between them and the reference (pure torch) implementation of the layers they replace.

The operators live in ``build/kernels/libmaskpot_kernels.so`` (``bash maskpot/kernels/build.sh``; setup.sh
builds it with the LAMMPS plugin, which links it). ``load()`` registers them in this process; an exported
TorchScript file made with ``kernels="fused"`` needs that before ``torch.jit.load`` (maskpot's ASE and OpenMM
loaders and the LAMMPS plugin do it), one made with ``kernels="reference"`` loads with plain torch.

Kernels: ``"reference"`` (the layers as trained: differentiable to any order) or ``"fused"`` (inference only:
first derivatives with respect to the inputs, which forces need, and no gradient for the weights).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

KERNELS = ("fused", "reference")
LIBRARY_ENV = "MASKPOT_KERNELS_LIB"
log = logging.getLogger(__name__)


def library_path() -> Path:
    """``$MASKPOT_KERNELS_LIB`` or <repo>/build/kernels/libmaskpot_kernels.so."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "build" / "kernels" / "libmaskpot_kernels.so"


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
        raise RuntimeError(f"maskpot kernels library {path} not built: run bash maskpot/kernels/build.sh "
                           f"(or export with --kernels reference)")
    torch.ops.load_library(str(path))
    log.debug("loaded maskpot kernels from %s", path)


def check_kernels(kernels: str) -> None:
    if kernels not in KERNELS:
        raise ValueError(f"unknown kernels {kernels!r}; choose one of {', '.join(KERNELS)}")
