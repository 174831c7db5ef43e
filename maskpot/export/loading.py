"""Loading an exported file for an engine, and the torch device it runs on.

``load_exported`` is the one place that knows the file formats: today TorchScript (``torch.jit.save`` with the
metadata in ``_extra_files``); another format plugs in here as one more branch, returning a callable with the
same inputs and outputs as the target's TorchScript ``forward``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from maskpot.allocator import tune_allocator
from maskpot.export.metadata import read_metadata

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


def load_exported(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model on ``device``, metadata) of a file written by ``maskpot export``.

    The model is the target's TorchScript module (``maskpot.export.targets``: inputs and outputs in the target's
    units, metadata attributes such as ``dtype`` and ``cutoff``). A file that is not a maskpot export raises a
    one-line ValueError (``read_metadata``). Puts maskpot's caching CPU allocator in place (maskpot.allocator).
    """
    meta = read_metadata(path)
    tune_allocator()
    module = torch.jit.load(str(path), map_location=resolve_device(device))
    return module, meta
