"""Loading an exported file for an engine, and the torch device it runs on.

``load_exported`` is the one place that knows the file formats: today TorchScript (``torch.jit.save`` with the
metadata in ``_extra_files``); another format plugs in here as one more branch, returning a callable with the
same inputs and outputs as the target's TorchScript ``forward``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable

import torch

from maskpot.allocator import tune_allocator
from maskpot.export.metadata import load_kernels_for, read_metadata

DEVICES = ("cpu", "cuda", "auto")  # "cuda:K" picks GPU K; "auto" is cuda when torch sees a CUDA device


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"cpu"``, ``"cuda"`` (``"cuda:K"``) or ``"auto"`` -> a ``torch.device``; a one-line ValueError when CUDA
    is asked for but torch sees no such device."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)} (or cuda:K)")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)} (or cuda:K)") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r}, but torch sees no CUDA device (torch.cuda.is_available() is False); "
                             "use device='cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r}, but torch sees only {torch.cuda.device_count()} CUDA device(s)")
    return resolved


def load_exported(path: str | Path, device: str | torch.device = "cpu") -> tuple[Callable, dict]:
    """(model, metadata) of a file written by ``maskpot export``; ``model`` runs on ``device`` (resolved as by
    ``resolve_device``), except that "auto" means the CPU for an AOTInductor package (compiled for the CPU).

    The model is the target's TorchScript module (``maskpot.export.targets``: inputs and outputs in the target's
    units, metadata attributes such as ``dtype`` and ``cutoff``), or for ``--format aoti`` a callable with the
    same inputs and outputs (``maskpot.export.aoti.load_package``). A file that is not a maskpot export raises a
    one-line ValueError (``read_metadata``). Puts maskpot's caching CPU allocator in place (maskpot.allocator)
    and, for an export made with fused kernels, registers maskpot's operators (maskpot.kernels.load).
    """
    meta = read_metadata(path)
    tune_allocator()
    if meta["export_format"] == "aoti":
        from maskpot.export.aoti import load_package

        return load_package(path, "cpu" if str(device) == "auto" else str(resolve_device(device)))[0], meta
    load_kernels_for(meta)  # an export with fused kernels calls maskpot's operators (maskpot.kernels)
    return torch.jit.load(str(path), map_location=resolve_device(device)), meta


def model_device(model) -> torch.device:
    """The device a loaded model runs on: its first parameter's or buffer's (TorchScript), else the CPU
    (packages, and modules without tensors)."""
    if isinstance(model, torch.nn.Module):
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            return tensor.device
    return torch.device("cpu")
