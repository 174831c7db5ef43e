"""pair_style maskpot on bad input and failing models: each case exits non-zero with exactly one `ERROR` line
that says what went wrong, no traceback, on 1 and 2 MPI ranks. The failing models are real exports wrapped
(``Tampered``) to raise, return wrong shapes or dtypes, non-finite values, or a wrong ``state_width``. The same
malformed exports also run under AddressSanitizer (``MASKPOT_ASAN=1 bash lammps/build.sh``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch
from torch import Tensor

from maskpot.lammps import plugin_path, write_data
from maskpot.lammps.plugin import PLUGIN_ENV, PLUGIN_NAME, build_dir, engine_environment, executable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lammps"))  # toymodel: an export without the layer-wise interface
ASAN_PLUGIN = build_dir(asan=True) / PLUGIN_NAME
# the metadata attributes pair_maskpot reads (lammps/src/maskpot_model.cpp), which a wrapper of an export copies
METADATA = ("cutoff", "species", "species_symbols", "species_masses", "energy_centric", "dtype", "target", "n_layers")


class Tampered(torch.nn.Module):
    """A LAMMPS export with one fault: ``fault`` names it; "raise" raises from call ``after`` + 1 on (calls:
    forward on one rank, edge_features on several, once per step)."""

    def __init__(self, inner: torch.nn.Module, fault: str, after: int = 0):
        super().__init__()
        self.inner = inner
        for name in METADATA:
            setattr(self, name, getattr(inner, name))
        self.state_width: int = 1 if fault == "state_width" else inner.state_width
        self.fault = fault
        self.after = after
        self.calls = 0

    def count(self) -> None:
        self.calls += 1
        if self.fault == "raise" and self.calls > self.after:
            raise RuntimeError("maskpot test fault: the model gave up at call " + str(self.calls))

    def forward(self, positions: Tensor, atomic_numbers: Tensor, edge_index: Tensor, edge_shift: Tensor,
                n_local: int, compute_virial: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        self.count()
        energy, node_energy, forces, virial = self.inner(positions, atomic_numbers, edge_index, edge_shift, n_local,
                                                         compute_virial)
        if self.fault == "shape":
            forces = forces[1:]
        if self.fault == "dtype":
            forces = forces.float()
        if self.fault == "nan":
            forces = forces.clone()
            forces[n_local - 1, 0] = float("nan")
        return energy, node_energy, forces, virial

    @torch.jit.export
    def edge_features(self, edge_vec: Tensor) -> Tensor:
        self.count()
        return self.inner.edge_features(edge_vec)

    @torch.jit.export
    def initial_state(self, atomic_numbers: Tensor, feat: Tensor) -> Tuple[Tensor, Tensor]:
        return self.inner.initial_state(atomic_numbers, feat)

    @torch.jit.export
    def layer_step(self, k: int, node: Tensor, edge: Tensor, feat: Tensor, edge_index: Tensor,
                   n_local: int) -> Tuple[Tensor, Tensor]:
        if self.fault == "state_width" and k > 0:  # what an export with a wrong state_width sends on
            node = node.repeat(1, self.inner.state_width)
        node, edge = self.inner.layer_step(k, node, edge, feat, edge_index, n_local)
        if self.fault == "shape":
            node = node[:, :-1]
        return node, edge

    @torch.jit.export
    def node_outputs(self, node: Tensor, edge: Tensor, feat: Tensor, edge_index: Tensor, atomic_numbers: Tensor,
                     edge_vec: Tensor) -> Tuple[Tensor, Tensor]:
        node_energy, node_vector = self.inner.node_outputs(node, edge, feat, edge_index, atomic_numbers, edge_vec)
        if self.fault == "nan" and node_energy.shape[0] > 0:
            node_energy = node_energy.clone()
            node_energy[-1] = float("nan")
        if self.fault == "dtype":
            node_energy = node_energy.float()
        return node_energy, node_vector


def tampered(export: Path, out: Path, fault: str, after: int = 0) -> Path:
    torch.jit.save(torch.jit.script(Tampered(torch.jit.load(str(export)), fault, after)), str(out))
    return out


@pytest.fixture(scope="module")
def plugin() -> Path:
    return plugin_path()


@pytest.fixture(scope="module")
def water(water_atoms, tmp_path_factory) -> Path:
    return write_data(water_atoms, tmp_path_factory.mktemp("faults") / "water.data", "O,H")


def lmp(tmp: Path, data: Path, model: Path, plugin: Path, nprocs: int, elements: str = "O H", style: str = "",
        body: str = "run 0", units: str = "metal", before: str = "", preload: str = "",
        env: dict | None = None) -> subprocess.CompletedProcess:
    """`lmp` (or `mpirun -np N lmp`) on a small deck; the finished process with its exit code and output."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "in.lmp").write_text(f"""
units {units}
atom_style atomic
{before}
read_data {data}
plugin load {plugin}
pair_style maskpot {style}
pair_coeff * * {model} {elements}
velocity all create 300 1 dist gaussian
fix md all nve
timestep 0.0005
thermo 1
{body}
""")
    command = [executable("lmp"), "-in", "in.lmp", "-log", "none", "-nocite"]
    if nprocs > 1:
        command = [executable("mpirun"), "-np", str(nprocs)] + command
    environment = engine_environment(nprocs, 1)
    if preload:
        environment["LD_PRELOAD"] = f"{preload} {environment['LD_PRELOAD']}"
    environment.update(env or {})
    return subprocess.run(command, cwd=tmp, env=environment, capture_output=True, text=True, timeout=120)


def assert_one_error(done: subprocess.CompletedProcess, pattern: str) -> str:
    """Non-zero exit, exactly one ERROR line (matching ``pattern``), no C++ or Python traceback."""
    import re

    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert done.returncode != 0, output[-3000:]
    assert len(errors) == 1, output[-3000:]
    assert re.search(pattern, errors[0]), errors[0]
    for noise in ("Exception", "Traceback", "terminate called", "Segmentation", "AddressSanitizer"):
        assert noise not in output, output[-3000:]
    return errors[0]


@pytest.mark.parametrize("nprocs", [1, 2])
def test_model_that_fails_mid_run(nprocs, water, export_factory, plugin, tmp_path):
    """The model raises at its 4th call (step 3 of `run 10`): one ERROR line with the model's own message and the
    step, on every rank count."""
    model = tampered(export_factory("lammps", "painn", "float64"), tmp_path / "fails.pt", "raise", after=3)
    done = lmp(tmp_path, water, model, plugin, nprocs, body="run 10")
    line = assert_one_error(done, r"^ERROR: maskpot model \S+fails\.pt failed at step 3.*"
                                  r"RuntimeError: maskpot test fault: the model gave up at call 4 \(")
    assert ("on MPI rank" in line) == (nprocs > 1)


@pytest.mark.parametrize("nprocs, fault, pattern", [
    (1, "shape", r"forward's forces: expected shape \[192, 3\] Double, got \[191, 3\] Double"),
    (2, "shape", r"layer_step's node states: expected shape \[\d+, 64\] Double, got \[\d+, 63\] Double"),
    (1, "dtype", r"forward's forces: expected shape \[192, 3\] Double, got \[192, 3\] Float"),
    (2, "dtype", r"node_outputs' node_energy: expected shape \[\d+\] Double, got \[\d+\] Float"),
    (1, "nan", r"non-finite force of atom ID \d+"),
    (2, "nan", r"non-finite energy of atom ID \d+"),
    (2, "state_width", r"initial_state's node states: expected shape \[\d+, 1\] Double, got \[\d+, 64\] Double"),
])
def test_malformed_model_outputs(nprocs, fault, pattern, water, export_factory, plugin, tmp_path):
    model = tampered(export_factory("lammps", "painn", "float64"), tmp_path / f"{fault}.pt", fault)
    assert_one_error(lmp(tmp_path, water, model, plugin, nprocs), r"^ERROR: maskpot model .*" + pattern)


def test_masses_contradicting_the_elements(water, export_factory, plugin, tmp_path):
    """Types 1=O (mass 16), 2=H: `pair_coeff * * model H O` is refused naming the type, its mass and the element;
    `check_masses no` runs it."""
    model = export_factory("lammps", "painn", "float64")
    done = lmp(tmp_path / "refused", water, model, plugin, 1, elements="H O")
    assert_one_error(done, r"^ERROR: pair_coeff for maskpot: atom type 1 has mass 15\.999 but is mapped to H "
                           r"\(mass 1\.008\).*check_masses no")
    done = lmp(tmp_path / "allowed", water, model, plugin, 1, elements="H O", style="check_masses no")
    assert done.returncode == 0, done.stdout[-2000:]


class RepulsionEnergyInterface(torch.nn.Module):
    """A real export's forward with the layer-wise methods of files written before the priors joined them:
    ``readout`` and a separate ``repulsion_energy`` instead of ``node_outputs`` (stubs: the plugin refuses the
    file on several ranks before calling any of them)."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        for name in METADATA + ("state_width",):
            setattr(self, name, getattr(inner, name))

    def forward(self, positions: Tensor, atomic_numbers: Tensor, edge_index: Tensor, edge_shift: Tensor,
                n_local: int, compute_virial: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.inner(positions, atomic_numbers, edge_index, edge_shift, n_local, compute_virial)

    @torch.jit.export
    def edge_features(self, edge_vec: Tensor) -> Tensor:
        return edge_vec

    @torch.jit.export
    def initial_state(self, atomic_numbers: Tensor, feat: Tensor) -> Tuple[Tensor, Tensor]:
        return feat, feat

    @torch.jit.export
    def layer_step(self, k: int, node: Tensor, edge: Tensor, feat: Tensor, edge_index: Tensor,
                   n_local: int) -> Tuple[Tensor, Tensor]:
        return node, edge

    @torch.jit.export
    def readout(self, node: Tensor, edge: Tensor, feat: Tensor, edge_index: Tensor,
                atomic_numbers: Tensor) -> Tuple[Tensor, Tensor]:
        return node, edge

    @torch.jit.export
    def repulsion_energy(self, edge_vec: Tensor, edge_index: Tensor, atomic_numbers: Tensor, n_local: int) -> Tensor:
        return edge_vec


class EdgeVectorsInFeaturesInterface(RepulsionEnergyInterface):
    """The layer-wise methods of files written while the edge vectors were the first columns of the edge features:
    ``node_outputs`` without them (a stub, refused before any call)."""

    @torch.jit.export
    def node_outputs(self, node: Tensor, edge: Tensor, feat: Tensor, edge_index: Tensor,
                     atomic_numbers: Tensor) -> Tuple[Tensor, Tensor]:
        return node, edge


@pytest.mark.parametrize("old", ["toy", "repulsion_energy", "node_outputs without edge vectors"])
def test_old_export_on_two_ranks_says_reexport(old, water, plugin, tmp_path, export_factory):
    """An export without the layer-wise interface (the toy), or with the one before ``node_outputs``, or with a
    ``node_outputs`` that does not take the edge vectors, runs on one rank only (ghosts folded)."""
    from toymodel import save_toy_model

    model = tmp_path / "old.pt"
    if old == "toy":
        save_toy_model(model)
    else:
        inner = torch.jit.load(str(export_factory("lammps", "painn-rep", "float64")))
        wrapper = RepulsionEnergyInterface if old == "repulsion_energy" else EdgeVectorsInFeaturesInterface
        torch.jit.save(torch.jit.script(wrapper(inner)), str(model))
    assert lmp(tmp_path / "np1", water, model, plugin, 1).returncode == 0
    assert_one_error(lmp(tmp_path / "np2", water, model, plugin, 2),
                     r"^ERROR: pair_style maskpot: model \S+old\.pt has no layer-wise interface of this version "
                     r"\(node_outputs\), which several MPI ranks need: re-export it with `maskpot export CHECKPOINT "
                     r"--target lammps`")


def save_old_interface_model(path: Path) -> Path:
    """A scripted module with the metadata attributes but the pre-edge_shift forward (5 arguments)."""
    from toymodel import ToyLammpsModel

    class OldInterface(ToyLammpsModel):
        def forward(self, positions: Tensor, atomic_numbers: Tensor, edge_index: Tensor, n_local: int,
                    compute_virial: bool) -> Tensor:
            return positions

    torch.jit.save(torch.jit.script(OldInterface()), str(path))
    return path


BAD_INPUT = {  # case: (what the deck gets, the ERROR line)
    "missing model": ({"model": "nope.pt"}, r"maskpot model file \S*nope\.pt: does not exist or cannot be read"),
    "corrupt model": ({"model": "corrupt.pt"}, r"maskpot model file \S*corrupt\.pt: cannot be loaded: "),
    "openmm model": ({"model": "openmm"}, r"model exported for openmm: re-export with --target lammps"),
    "old interface": ({"model": "old-interface.pt"},
                      r"old-interface\.pt: its forward takes 5 arguments, this pair style passes 6 .*re-export"),
    "exchange without layers": ({"model": "toy", "style": "ghosts exchange"},
                                r"model \S*toy\.pt has no layer-wise interface of this version \(node_outputs\), "
                                r"which ghosts exchange needs"),
    "units lj": ({"units": "lj"}, r"pair_style maskpot supports units metal and real, not units lj"),
    "export without element table": ({"model": "no-symbols.pt"},
                                     r"no-symbols\.pt: no species_symbols and species_masses attributes: re-export"),
    "unknown element": ({"elements": "O Q"}, r"element Q \(atom type 2\) is not in the species of model \S+ \(H O\)"),
    "element not in model": ({"elements": "O C"}, r"element C \(atom type 2\) is not in the species of model"),
    "too few elements": ({"elements": "O"}, r"expected '\* \* model.pt' and 2 element names"),
    "newton off on two ranks": ({"before": "newton off", "nprocs": 2},
                                r"requires newton pair on with several MPI ranks \(ghosts exchange\)"),
    "fold on two ranks": ({"style": "ghosts fold", "nprocs": 2},
                          r"pair_style maskpot ghosts fold needs one MPI rank \(running on 2\)"),
    "per-atom virial": ({"body": "compute s all stress/atom NULL\ncompute p all reduce sum c_s[1]\n"
                                 "thermo_style custom step c_p\nrun 0"},
                        r"pair_style maskpot does not compute per-atom virials"),
    "ghosts halo": ({"style": "ghosts halo"},
                    r"pair_style maskpot ghosts must be auto, fold or exchange, not 'halo'"),
    "check_masses maybe": ({"style": "check_masses maybe"},
                           r"pair_style maskpot check_masses must be yes or no, not 'maybe'"),
    "device tpu": ({"style": "device tpu"}, r"pair_style maskpot device must be cpu, cuda or auto, not 'tpu'"),
    "unknown keyword": ({"style": "cutoff 5"},
                        r"pair_style maskpot takes 'ghosts auto\|fold\|exchange', 'check_masses yes\|no' and "
                        r"'device cpu\|cuda\|auto' \(got 'cutoff'\)"),
}


def save_model_without_element_table(path: Path) -> Path:
    """The toy model as files exported before species_symbols and species_masses existed."""
    from toymodel import ToyLammpsModel

    module = ToyLammpsModel()
    del module.species_symbols, module.species_masses
    torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input(case, water, export_factory, plugin, tmp_path):
    from toymodel import save_toy_model

    given, pattern = BAD_INPUT[case]
    given = dict(given)
    models = {"openmm": lambda: export_factory("openmm"), "toy": lambda: save_toy_model(tmp_path / "toy.pt"),
              "old-interface.pt": lambda: save_old_interface_model(tmp_path / "old-interface.pt"),
              "corrupt.pt": lambda: (tmp_path / "corrupt.pt").write_bytes(b"not a zip") and tmp_path / "corrupt.pt",
              "nope.pt": lambda: tmp_path / "nope.pt",
              "no-symbols.pt": lambda: save_model_without_element_table(tmp_path / "no-symbols.pt")}
    model = models[given.pop("model")]() if "model" in given else export_factory("lammps")
    nprocs = given.pop("nprocs", 1)
    assert_one_error(lmp(tmp_path / "run", water, model, plugin, nprocs, **given), r"^ERROR: .*" + pattern)


def test_malformed_metadata(water, export_factory, plugin, tmp_path):
    """Metadata that contradicts itself (two species, one symbol) is one ERROR line, not a crash."""
    module = torch.jit.load(str(export_factory("lammps")))
    module.species_symbols = ["H"]
    torch.jit.save(module, str(tmp_path / "short.pt"))
    assert_one_error(lmp(tmp_path, water, tmp_path / "short.pt", plugin, 1),
                     r"^ERROR: maskpot model file \S+short\.pt: its species \(2\), species_symbols \(1\) and "
                     r"species_masses \(2\) differ in length")


def asan_runtime() -> str:
    done = subprocess.run(["c++", "-print-file-name=libasan.so"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 and Path(done.stdout.strip()).is_file() else ""


@pytest.mark.skipif(not ASAN_PLUGIN.is_file() or not asan_runtime(),
                    reason="no AddressSanitizer build: MASKPOT_ASAN=1 bash lammps/build.sh")
@pytest.mark.parametrize("nprocs", [1, 2])
def test_malformed_exports_under_address_sanitizer(nprocs, export_factory, water_atoms, tmp_path):
    """The plugin built with -fsanitize=address, 12288 atoms (the box where a state_width smaller than the states
    overran the exchange buffer): wrong state_width and wrong output shapes give the clean ERROR line, and
    AddressSanitizer reports nothing."""
    data = write_data(water_atoms.repeat((4, 4, 4)), tmp_path / "big.data", "O,H")
    # the lmp launcher loads the plugin of $MASKPOT_LAMMPS_PLUGIN itself (before the deck's `plugin load`)
    env = {"ASAN_OPTIONS": "detect_leaks=0", PLUGIN_ENV: str(ASAN_PLUGIN)}
    for fault, style, pattern in (("state_width", "ghosts exchange", "initial_state's node states: expected shape"),
                                  ("shape", "", "forward's forces|layer_step's node states")):
        model = tampered(export_factory("lammps", "painn", "float32"), tmp_path / f"{fault}.pt", fault)
        done = lmp(tmp_path / fault, data, model, ASAN_PLUGIN, nprocs, style=style, preload=asan_runtime(), env=env)
        assert_one_error(done, pattern)
