"""Metadata stored inside every exported file and how to read it back.

Reading needs only the standard library: a TorchScript file (``_extra_files``) and an AOTInductor package
(``package_pt2(extra_files=...)``) are both zip archives whose ``*/extra/metadata.json`` member holds the JSON,
so ``maskpot info`` and the engine adapters can check a file before loading it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import ase.data

METADATA_NAME = "metadata.json"
FORMAT = "maskpot-export"
EXPORT_FORMATS = ("torchscript", "aoti")  # metadata "export_format": a TorchScript file or an AOTInductor .pt2

UNITS = {
    "openmm": {"positions": "nm", "box": "nm", "energy": "kJ/mol", "forces": "kJ/mol/nm"},
    "lammps": {"positions": "Angstrom", "energy": "eV", "forces": "eV/Angstrom", "virial": "eV",
               "lammps_units": "metal (real converted by the pair style)"},
    "ase": {"positions": "Angstrom", "cell": "Angstrom", "energy": "eV", "forces": "eV/Angstrom", "virial": "eV"},
}


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (identifies the checkpoint an export came from)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def element_symbols(species: list[int]) -> list[str]:
    """Chemical symbols of atomic numbers (ASE's table)."""
    return [ase.data.chemical_symbols[z] for z in species]


def element_masses(species: list[int]) -> list[float]:
    """Standard atomic masses (g/mol, ASE's table) of atomic numbers: what pair_maskpot's check_masses compares."""
    return [float(ase.data.atomic_masses[z]) for z in species]


def build_metadata(*, target: str, config: dict, dtype: str, checkpoint: str | Path, data: dict,
                   versions: dict, atomic_numbers: list[int] | None = None,
                   export_format: str = EXPORT_FORMATS[0], kernels: str = "reference") -> dict:
    """The JSON-able metadata of one export."""
    species = list(config["species"])
    return {
        "format": FORMAT,
        "target": target,
        "export_format": export_format,
        "backbone": config["backbone"],
        "model_kind": "energy-centric" if config["backbone"] != "gns" else "force-centric",
        "species": species,
        "species_symbols": element_symbols(species),
        "species_masses": element_masses(species),
        "cutoff_angstrom": float(config["cutoff"]),
        "layers": int(config["layers"]),
        "receptive_field_angstrom": float(config["layers"]) * float(config["cutoff"]),
        "units": UNITS[target],
        "dtype": dtype,
        "kernels": kernels,
        "config": config,
        "checkpoint_sha256": file_sha256(checkpoint),
        "checkpoint_name": Path(checkpoint).name,
        "training_data": data,
        "versions": versions,
        "topology_atomic_numbers": atomic_numbers,
    }


def read_metadata(path: str | Path) -> dict:
    """Metadata of an exported file; a one-line ValueError if it is not a maskpot export."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("/extra/" + METADATA_NAME)]
            if not names:
                raise ValueError(f"{path}: not a maskpot export (a TorchScript or .pt2 file without maskpot metadata)")
            meta = json.loads(z.read(names[0]))
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a maskpot export (not a TorchScript file or .pt2 package)") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a maskpot export (metadata format {meta.get('format')!r})")
    meta.setdefault("export_format", EXPORT_FORMATS[0])  # files written before AOTInductor packages existed
    return meta


def refuse_export(path: str | Path, wanted: str) -> None:
    """Raise a one-line ValueError if ``path`` is a maskpot export where ``wanted`` (e.g. "a checkpoint") is needed."""
    if not zipfile.is_zipfile(path):
        return
    try:
        meta = read_metadata(path)
    except ValueError:
        return
    raise ValueError(f"{path}: this is an export (--target {meta['target']}), not {wanted}; pass the .ckpt it "
                     f"was exported from ({meta.get('checkpoint_name', 'a finetuned checkpoint')})")


def trained_on_periodic(meta: dict) -> bool:
    """Whether the exported model's training frames were periodic (``summary()``'s "periodic": "all"/True)."""
    data = meta.get("training_data") or {}
    flag = data.get("periodic", (data.get("train") or {}).get("periodic"))
    return flag in (True, "all")


def kernels_of(meta: dict) -> str:
    """The kernels an export was made with (maskpot.kernels); files older than the switch are "reference"."""
    return meta.get("kernels", "reference")


def load_kernels_for(meta: dict) -> None:
    """Register maskpot's operators if the export needs them (call before ``torch.jit.load``)."""
    if kernels_of(meta) != "reference":
        from maskpot import kernels

        kernels.load()
