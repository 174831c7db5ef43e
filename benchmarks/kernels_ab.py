"""In-process A/B timings: this working tree's maskpot (its C++ operators and its model code) against a git
revision's, and the exports' spatial atom order against the atoms as given.

Both builds run in one process and take turns on the same inputs, so a drift of the machine hits them alike (a
cross-process A/B of a whole model call cannot resolve such changes: this machine's run-to-run noise is about
10 %). The package maskpot/ of this working tree (A) and of --baseline (B, a git revision) is copied with the word
``maskpot`` renamed (package, operator and C++ namespace: maskpot_a, maskpot_b, so that the two share no Python
module, TorchScript class or C++ symbol), and each one's operators (kernels/csrc) are compiled here with the flags
of lammps/CMakeLists.txt.

"operators": torch.ops.maskpot_a against torch.ops.maskpot_b on the inputs each PaiNN layer's message step gets
in a model call (default PaiNN, random weights) on a water box in the exports' spatial order: painn_message
(forward) and painn_message_backward (fixed random output gradients) per layer, and neighbor_pairs on the box as
the exports call it (spatial order, edges in pairs).

"model code": energy + forces of the ASE export (TorchScript, fused kernels where the build has them) of one model
per --backbones made by each build's package (the same weights), on water boxes of --model-waters.

"atom order": the ASE export of this tree on a water box as OpenMM made it (molecules in random places): the
export's call, which sorts the atoms along maskpot.export.core.spatial_order, finds the edges, evaluates and
unsorts the forces, against its own edges and evaluate methods on the atoms as given (what it did before it
sorted).

Medians of CPU time per call over --rounds rounds (variants in turn, after warm-up calls); the ratio is B / A or
unsorted / sorted (> 1: A, or the sort, is faster), with the largest relative difference of the outputs.
Writes kernels_ab.md and kernels_ab.json to --out. Needs quiet cores.
    python benchmarks/kernels_ab.py --baseline 7684219~1 --waters 1024 --model-waters 258,1024,4096
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (REPO_ROOT, argument_parser, begin, csv_list, interleaved_calls,  # noqa: E402
                               markdown_table, write_report)

BUILDS = {"A": "maskpot_a", "B": "maskpot_b"}  # build -> the name of its package and operator namespace
# per-file options of lammps/CMakeLists.txt: the neighbour search rounds like the torch ops it mirrors
FILE_OPTIONS = {"neighbor_pairs.cpp": ["-ffp-contract=off"]}


def parse_args(argv=None):
    ap = argument_parser(__doc__, quick="small models on 27/64 waters, 2 rounds (a functional check)",
                         threads="torch threads",
                         quick_values={"waters": 64, "model_waters": "64", "order_waters": "27,64", "rounds": 2,
                                       "dtypes": "float32"})
    ap.add_argument("--baseline", default="HEAD", help="git revision of build B (default HEAD: the last commit)")
    ap.add_argument("--waters", type=int, default=1024, help="water molecules of the operators' box")
    ap.add_argument("--model-waters", default="1024,4096", help="boxes of the model-code rows (comma-separated)")
    ap.add_argument("--order-waters", default="1024,4096", help="boxes of the atom-order rows (comma-separated)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--backbones", default="painn,egnn", help="models of the model-code rows (comma-separated)")
    ap.add_argument("--rounds", type=int, default=10)
    return ap.parse_args(argv)


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def package_files(revision: str | None) -> dict[str, bytes]:
    """Path (under maskpot/) -> contents of the package's Python and C++ sources: the working tree's (``revision``
    None) or a git revision's."""
    keep = (".py", ".cpp", ".h")
    if revision is None:
        root = REPO_ROOT / "maskpot"
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.suffix in keep and "__pycache__" not in p.parts}
    done = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", revision, "maskpot"], capture_output=True)
    if done.returncode:
        raise SystemExit(f"git archive {revision}: {done.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        return {m.name[len("maskpot/"):]: tar.extractfile(m).read() for m in tar.getmembers()
                if m.isfile() and m.name.endswith(keep)}


def renamed(text: str, namespace: str) -> str:
    """``text`` with every word ``maskpot`` (package, operator and C++ namespace, schema names) -> ``namespace``."""
    return re.sub(r"\bmaskpot\b", namespace, text)


def write_package(files: dict[str, bytes], namespace: str, folder: Path) -> Path:
    """The package ``files`` renamed to ``namespace`` (importable from ``folder``, its operators torch.ops.<namespace>)
    in folder/<namespace>; returns that folder."""
    root = folder / namespace
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(renamed(data.decode(), namespace))
    return root


def build(packages: dict[str, Path], folder: Path) -> dict[str, Path]:
    """Compile the C++ operators (kernels/csrc) of each package (namespace -> its folder) into
    ``folder``/lib<namespace>.so, with the flags of lammps/CMakeLists.txt, the compilations in parallel;
    SystemExit with the compiler's last lines when one fails."""
    import torch
    from torch.utils.cpp_extension import include_paths

    lib_dir = Path(torch.__file__).parent / "lib"
    flags = ["-O3", "-DNDEBUG", "-march=native", "-std=c++17", "-fPIC", "-w",
             f"-D_GLIBCXX_USE_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}"]
    flags += [f for p in include_paths() for f in ("-isystem", p)]
    jobs, objects = [], {}
    for namespace, root in packages.items():
        for src in sorted((root / "kernels" / "csrc").glob("*.cpp")):
            obj = src.with_suffix(".o")
            objects.setdefault(namespace, []).append(obj)
            cmd = ["c++", *flags, *FILE_OPTIONS.get(src.name, []), "-c", str(src), "-o", str(obj)]
            jobs.append((src, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for src, job in jobs:
        out = job.communicate()[0]
        if job.returncode:
            raise SystemExit(f"compiling {src} failed:\n" + "\n".join(out.splitlines()[-20:]))
    libraries = {}
    for namespace, objs in objects.items():
        lib = folder / f"lib{namespace}.so"
        done = subprocess.run(["c++", "-shared", *map(str, objs), "-L", str(lib_dir), "-ltorch_cpu", "-lc10",
                               f"-Wl,-rpath,{lib_dir}", "-o", str(lib)], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"linking {lib} failed:\n{done.stderr[-2000:]}")
        libraries[namespace] = lib
    return libraries


def fused_painn(dtype: str, quick: bool):
    """A default (or, quick, small) PaiNN with random weights in ``dtype``, fused kernels, no weight gradients."""
    import torch

    from benchmarks.speed import model_config
    from maskpot.kernels.painn import use_fused
    from maskpot.models import build_potential

    torch.manual_seed(0)
    potential = build_potential(model_config("painn", dtype, quick))
    potential = potential.to(torch.float64 if dtype == "float64" else torch.float32).eval()
    for p in potential.parameters():
        p.requires_grad_(False)
    use_fused(potential)
    return potential


def layer_inputs(potential, frame) -> list[tuple]:
    """The arguments of torch.ops.maskpot.painn_message for every PaiNN layer of ``potential`` in a call on
    ``frame`` (atoms in spatial order and edges from the C++ neighbour search, sorted by (i, j), as a fused
    export calls it), captured by forward pre-hooks."""
    import numpy as np
    import torch

    from maskpot.export.core import ModelCore
    from maskpot.kernels.neighbors import use_fused_neighbors
    from maskpot.kernels.painn import FusedPaiNNMessage

    dtype = next(potential.parameters()).dtype
    captured = []

    def capture(module, args):
        s, v, feat, i, j, first, n_local = args
        captured.append((module.phi(s).detach(), v.detach(), module.filter.weight.detach(), feat.detach(), i, j,
                         int(n_local), bool(first)))

    hooks = [m.register_forward_pre_hook(capture) for m in potential.modules() if isinstance(m, FusedPaiNNMessage)]
    core = ModelCore(potential)
    use_fused_neighbors(core)  # the edge order of the exports: which rows the message step reads, in which order
    pos = torch.tensor(frame.positions, dtype=dtype)
    cell = torch.tensor(np.asarray(frame.cell), dtype=dtype)
    core.evaluate_structure(pos, core.species_index_of(torch.tensor(frame.numbers)), cell, torch.ones(3, dtype=torch.bool))
    for h in hooks:
        h.remove()
    return captured


def arguments_for(op, inputs: tuple) -> tuple:
    """painn_message's arguments (``layer_inputs``) in the schema of ``op`` (a build's torch.ops namespace): builds
    from before the edge features were one argument take rbf_cut and unit apart."""
    if "unit" not in [a.name for a in op.painn_message.default._schema.arguments]:
        return inputs
    s_phi, v, weight, feat, i, j, n_local, first = inputs
    r = weight.shape[1]
    return (s_phi, v, weight, feat[:, :r].contiguous(), feat[:, r:].contiguous(), i, j, n_local, first)


def feature_gradient_joined(grads: tuple, inputs: tuple) -> tuple:
    """painn_message_backward's outputs comparable across builds: the rbf_cut and unit gradients of older builds as
    one (E, R + 3), and on edges laid out in pairs (the exports' layout: edge 2k + 1 the reverse of 2k) each pair's
    rbf_cut gradient summed on its first row, where a build that computes one filter per pair puts it."""
    import torch

    g_phi, g_v, *g_feat = grads
    g_feat = g_feat[0] if len(g_feat) == 1 else torch.cat(g_feat, dim=1)
    i, j, r = inputs[4], inputs[5], inputs[2].shape[1]
    if len(i) % 2 == 0 and torch.equal(i[0::2], j[1::2]) and torch.equal(j[0::2], i[1::2]):
        g_feat = g_feat.clone()
        g_feat[0::2, :r] += g_feat[1::2, :r]
        g_feat[1::2, :r] = 0
    return g_phi, g_v, g_feat


def max_relative_difference(a, b) -> float:
    """The largest |a - b| over the largest |a|, over the tensors of two results (a tensor or a tuple)."""
    a, b = (a,) if not isinstance(a, (tuple, list)) else a, (b,) if not isinstance(b, (tuple, list)) else b
    worst = 0.0
    for x, y in zip(a, b):
        if x.numel():
            worst = max(worst, float((x - y).abs().max()) / max(float(x.abs().max()), 1e-300))
    return worst


def neighbor_call(op, frame, dtype, cutoff: float):
    """The neighbour search of ``op`` (a build's torch.ops namespace) as the exports call it: atoms in spatial order,
    edges in pairs (builds from before the paired layout: the sorted one)."""
    import numpy as np
    import torch

    from maskpot.export.core import spatial_order

    pos = torch.tensor(frame.positions, dtype=dtype)
    pos = pos[spatial_order(pos)].contiguous()
    args = (pos, torch.tensor(np.asarray(frame.cell), dtype=dtype), torch.ones(3, dtype=torch.bool), cutoff)
    paired = "paired" in [a.name for a in op.neighbor_pairs.default._schema.arguments]
    return (lambda: op.neighbor_pairs(*args, True)) if paired else (lambda: op.neighbor_pairs(*args))


def operator_rows(args) -> list[dict]:
    """One row per dtype and timed call (each layer's forward and backward, the neighbour search)."""
    import numpy as np
    import torch

    from benchmarks.speed import water_box

    rows = []
    frame = water_box(args.waters)
    ops = {build: getattr(torch.ops, ns) for build, ns in BUILDS.items()}
    for dtype in csv_list(args.dtypes):
        potential = fused_painn(dtype, args.quick)
        t = next(potential.parameters()).dtype
        calls, layer = {}, {}
        for k, inputs in enumerate(layer_inputs(potential, frame)):
            layer[f"layer {k} backward"] = inputs
            gen = torch.Generator().manual_seed(k)
            ds, dv = ops["A"].painn_message(*inputs)
            grads = (torch.randn(ds.shape, generator=gen, dtype=t), torch.randn(dv.shape, generator=gen, dtype=t))
            own = {b: arguments_for(op, inputs) for b, op in ops.items()}
            calls[f"layer {k} forward"] = {b: (lambda op=op, x=own[b]: op.painn_message(*x)) for b, op in ops.items()}
            calls[f"layer {k} backward"] = {b: (lambda op=op, x=own[b], g=grads: op.painn_message_backward(*g, *x))
                                            for b, op in ops.items()}
        calls["neighbor_pairs"] = {b: neighbor_call(op, frame, t, float(potential.cutoff)) for b, op in ops.items()}
        for name, pair in calls.items():
            row = {"dtype": dtype, "call": name, "atoms": len(frame.numbers)}
            try:
                med = interleaved_calls(pair, args.rounds)
                row.update(a_cpu_ms=med["A"][0], b_cpu_ms=med["B"][0], a_wall_ms=med["A"][1], b_wall_ms=med["B"][1],
                           ratio=med["B"][0] / med["A"][0],
                           max_rel_diff=max_relative_difference(*(feature_gradient_joined(pair[b](), layer[name])
                                                                  if "backward" in name else pair[b]()
                                                                  for b in ("A", "B"))),
                           error=None)
            except RuntimeError as exc:  # e.g. a baseline without this operator or with another signature
                row["error"] = str(exc).strip().splitlines()[0]
            rows.append(row)
            print(f"{dtype} {name}: {row}", flush=True)
    return rows


def order_rows(args) -> list[dict]:
    """Per dtype and box: the ASE export's call (spatial order) against its edges + evaluate on the atoms as given."""
    import numpy as np
    import torch

    from benchmarks.speed import model_config, water_box
    from maskpot.export.writer import build_module
    from maskpot.models import build_potential

    rows = []
    for dtype in csv_list(args.dtypes):
        torch.manual_seed(0)
        potential = build_potential(model_config("painn", dtype, args.quick))
        module = build_module(potential, {"species": [1, 8], "backbone": "painn"}, "ase", dtype, "fused")
        t = torch.float64 if dtype == "float64" else torch.float32
        for waters in csv_list(args.order_waters, int):
            frame = water_box(waters)
            pos = torch.tensor(frame.positions, dtype=torch.float64)
            numbers, cell = torch.tensor(frame.numbers), torch.tensor(np.asarray(frame.cell), dtype=torch.float64)
            pbc = torch.ones(3, dtype=torch.bool)
            species = module.core.species_index_of(numbers)

            def as_given():
                edge_index, edge_vec = module.core.edges(pos.to(t), cell.to(t), pbc)
                energy, _, forces, _ = module.core.evaluate(species, edge_index, edge_vec, pos.shape[0], None)
                return energy.double(), forces.double()

            def spatial():
                return module(pos, numbers, cell, pbc)[:2]

            # warm-up calls: TorchScript's profiling executor specialises during the first calls of each shape
            med = interleaved_calls({"as given": as_given, "spatial order": spatial}, args.rounds, warmup=3)
            rows.append({"dtype": dtype, "waters": waters, "atoms": 3 * waters, "unsorted_cpu_ms": med["as given"][0],
                         "sorted_cpu_ms": med["spatial order"][0], "unsorted_wall_ms": med["as given"][1],
                         "sorted_wall_ms": med["spatial order"][1],
                         "ratio": med["as given"][0] / med["spatial order"][0],
                         "max_rel_diff": max_relative_difference(as_given(), spatial())})
            print(f"atom order {dtype} {waters} waters: {rows[-1]}", flush=True)
    return rows


def export_per_package(packages: dict[str, object], config: dict, dtype: str) -> tuple[dict, str]:
    """({build: the ASE export (fused kernels) of one model ``config`` made by that build's package}, how the
    weights compare): B's potential takes A's weights (the same parameter names where the architecture is the
    same)."""
    import torch

    modules, weights, first = {}, "the same weights", None
    for build, pkg in packages.items():
        torch.manual_seed(0)
        potential = pkg.models.build_potential(pkg.models.ModelConfig(**config))
        if first is None:
            first = potential
        else:
            try:
                potential.load_state_dict(first.state_dict())
            except RuntimeError:
                weights = "weights from the same seed (the parameter names differ)"
        modules[build] = pkg.export.writer.build_module(potential, {"species": [1, 8], "backbone": config["backbone"]},
                                                        "ase", dtype, "fused")
    return modules, weights


def model_rows(args, packages: dict[str, object]) -> list[dict]:
    """Per backbone, dtype and box: the ASE exports of one model made by each build's package
    (:func:`export_per_package`), called in turn on the same water box."""
    import numpy as np
    import torch

    from benchmarks.speed import model_config, water_box

    rows = []
    for backbone, dtype in [(b, d) for b in csv_list(args.backbones) for d in csv_list(args.dtypes)]:
        config = dataclasses.asdict(model_config(backbone, dtype, args.quick))
        try:
            modules, weights = export_per_package(packages, config, dtype)
        except Exception as exc:  # noqa: BLE001 (e.g. a baseline whose API differs: the rows say why)
            rows += [{"backbone": backbone, "dtype": dtype, "waters": w, "atoms": 3 * w,
                      "error": str(exc).strip().splitlines()[0]} for w in csv_list(args.model_waters, int)]
            continue
        for waters in csv_list(args.model_waters, int):
            frame = water_box(waters)
            x = (torch.tensor(frame.positions, dtype=torch.float64), torch.tensor(frame.numbers),
                 torch.tensor(np.asarray(frame.cell), dtype=torch.float64), torch.ones(3, dtype=torch.bool))
            calls = {b: (lambda m=m: m(*x)[:2]) for b, m in modules.items()}
            med = interleaved_calls(calls, args.rounds, warmup=3)  # warm-up: TorchScript specialises
            rows.append({"backbone": backbone, "dtype": dtype, "waters": waters, "atoms": 3 * waters,
                         "a_cpu_ms": med["A"][0],
                         "b_cpu_ms": med["B"][0], "a_wall_ms": med["A"][1], "b_wall_ms": med["B"][1],
                         "ratio": med["B"][0] / med["A"][0], "weights": weights,
                         "max_rel_diff": max_relative_difference(calls["A"](), calls["B"]())})
            print(f"model {backbone} {dtype} {waters} waters: {rows[-1]}", flush=True)
    return rows


def report(result: dict) -> str:
    def num(x, digits=2):
        return f"{x:.{digits}f}"

    op_head = ["dtype", "call", "A CPU ms", "B CPU ms", "B / A", "A wall ms", "B wall ms", "max rel. diff"]
    op_rows = [[r["dtype"], r["call"], f"failed: {r['error']}", "", "", "", "", ""] if r.get("error") else
               [r["dtype"], r["call"], num(r["a_cpu_ms"]), num(r["b_cpu_ms"]), num(r["ratio"]), num(r["a_wall_ms"]),
                num(r["b_wall_ms"]), f"{r['max_rel_diff']:.1e}"] for r in result["operators"]]
    models = result["models"]
    model_head = ["backbone", "dtype", "waters", "atoms", "A CPU ms", "B CPU ms", "B / A", "A wall ms", "B wall ms",
                  "max rel. diff"]
    model_table = [[r["backbone"], r["dtype"], r["waters"], r["atoms"], f"failed: {r['error']}", "", "", "", "", ""]
                   if r.get("error") else
                   [r["backbone"], r["dtype"], r["waters"], r["atoms"], num(r["a_cpu_ms"], 1), num(r["b_cpu_ms"], 1),
                    num(r["ratio"]), num(r["a_wall_ms"], 1), num(r["b_wall_ms"], 1), f"{r['max_rel_diff']:.1e}"]
                   for r in models]
    order_head = ["dtype", "waters", "atoms", "as given CPU ms", "spatial order CPU ms", "as given / sorted",
                  "as given wall ms", "sorted wall ms", "max rel. diff"]
    order = [[r["dtype"], r["waters"], r["atoms"], num(r["unsorted_cpu_ms"], 1), num(r["sorted_cpu_ms"], 1),
              num(r["ratio"]), num(r["unsorted_wall_ms"], 1), num(r["sorted_wall_ms"], 1), f"{r['max_rel_diff']:.1e}"]
             for r in result["atom_order"]]
    return (f"# Kernel A/B (benchmarks/kernels_ab.py)\n\n"
            f"## Operators: A = this working tree ({result['tree']}) against B = {result['baseline']} "
            f"({result['baseline_commit'][:12]})\n\n"
            f"One {'small' if result['quick'] else 'default'} PaiNN (random weights), {result['operators'][0]['atoms'] if result['operators'] else 0} "
            f"atoms of water in spatial order; the inputs each layer's message step gets in a model call. Medians of "
            f"{result['rounds']} rounds, builds in turn. B / A > 1: A is faster.\n\n"
            + markdown_table(op_head, op_rows)
            + f"\n\n## Model code: the ASE export (fused kernels) made by A's package against B's\n\n"
              f"The whole package of each build (maskpot/, renamed maskpot_a and maskpot_b, with its own operators), "
              f"one model per backbone ({models[0].get('weights', 'not built') if models else ''}), energy + "
              f"forces per call. B / A > 1: A is faster.\n\n"
            + markdown_table(model_head, model_table)
            + "\n\n## Atom order: the ASE export's call (spatial order) against its edges + evaluate on the atoms "
              "as given\n\n"
            + markdown_table(order_head, order) + "\n")


def main(argv=None) -> int:
    args, out, started = begin(parse_args(argv))
    from maskpot.allocator import tune_allocator

    import torch

    tune_allocator()  # as maskpot's engines run
    baseline_commit = git("rev-parse", "--verify", f"{args.baseline}^{{commit}}").strip()
    dirty = bool(git("status", "--porcelain", "--", "maskpot").strip())
    tree = git("rev-parse", "--short=12", "HEAD").strip() + (" + uncommitted changes of maskpot/" if dirty else "")
    with tempfile.TemporaryDirectory(prefix="maskpot-kernels-ab-") as tmp:
        roots = {BUILDS["A"]: write_package(package_files(None), BUILDS["A"], Path(tmp)),
                 BUILDS["B"]: write_package(package_files(baseline_commit), BUILDS["B"], Path(tmp))}
        for lib in build(roots, Path(tmp)).values():
            torch.ops.load_library(str(lib))
        sys.path.insert(0, tmp)
        packages = {b: importlib.import_module(ns) for b, ns in BUILDS.items()}
        for ns in BUILDS.values():
            importlib.import_module(f"{ns}.export.writer")
        operators = operator_rows(args)
        models = model_rows(args, packages)
        atom_order = order_rows(args)
    result = {"quick": args.quick, "baseline": args.baseline, "baseline_commit": baseline_commit, "tree": tree, "rounds": args.rounds,
              "operators": operators, "models": models, "atom_order": atom_order}
    return write_report(args, started, "kernels_ab", result, report(result))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
