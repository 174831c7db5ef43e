"""Fused against reference kernels (maskpot.kernels) on liquid water boxes, timed side by side in one process.

Two tables. "search": the neighbour search alone, the pure-torch cell list of reference exports (TorchScript,
maskpot.models.neighbors) against the C++ operator of fused ones (torch.ops.maskpot.neighbor_pairs), on the
positions and cell of each box in the model dtype. "model": energy + forces per step of the ASE export of a
random-weight default PaiNN (neighbour search included) with reference kernels, with the fused message step only
("fused message": the pure-torch search kept) and with all fused kernels (message step and neighbour search).

With maskpot's caching CPU allocator in place, as in the engines. The variants of each size and dtype are called
in turn (interleaved, so load on the machine hits them alike); CPU time (time.process_time) and wall time per call
are the medians over the repeats, with ratios of the CPU medians, and the largest energy and force differences
from the reference export. Prints tables only: nothing is written (timings under load are not results).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import argument_parser, begin, csv_list, interleaved_calls, markdown_table  # noqa: E402

MODEL_VARIANTS = ("reference", "fused message", "fused")


def parse_args(argv=None):
    ap = argument_parser(__doc__)
    ap.add_argument("--waters", default="64,258,1024", help="water molecules per box (comma-separated)")
    ap.add_argument("--dtypes", default="float32", help="float32,float64")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls of each variant")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--out", default="/tmp/maskpot-kernels-speed", help="scratch folder (nothing is kept)")
    return ap.parse_args(argv)


def model_modules(dtype: str) -> dict:
    """The ASE exports of one random-weight default PaiNN, one per MODEL_VARIANTS entry."""
    import torch

    from maskpot.export.targets import AseModel
    from maskpot.export.writer import build_module
    from maskpot.kernels.painn import use_fused
    from maskpot.models import ModelConfig, build_potential

    torch.manual_seed(0)
    potential = build_potential(ModelConfig(backbone="painn", species=[1, 8], dtype=dtype,
                                            avg_neighbors=32.0))  # random weights, no data
    config = {"species": [1, 8], "backbone": "painn"}
    message_only = copy.deepcopy(potential).to(torch.float64 if dtype == "float64" else torch.float32).eval()
    for p in message_only.parameters():
        p.requires_grad_(False)
    use_fused(message_only)  # build_module with "fused" also swaps in the neighbour operator
    return {"reference": build_module(potential, config, "ase", dtype, "reference"),
            "fused message": torch.jit.script(AseModel(message_only, [1, 8], dtype, "ase", "fused")),
            "fused": build_module(potential, config, "ase", dtype, "fused")}


def main(argv=None) -> int:
    import numpy as np
    import torch

    from benchmarks.speed import water_box
    from maskpot import kernels
    from maskpot.allocator import tune_allocator
    from maskpot.models.neighbors import neighbor_pairs

    args = begin(parse_args(argv))[0]
    tune_allocator()  # what maskpot's engines do (the caching CPU allocator, maskpot.allocator)
    kernels.load()
    torch_search = torch.jit.script(neighbor_pairs)  # as in a reference export
    search_rows, model_rows = [], []
    search_head = ["waters", "atoms", "dtype", "edges", "torch CPU ms", "op CPU ms", "ratio (CPU)", "torch wall ms",
                   "op wall ms"]
    model_head = ["waters", "atoms", "dtype"] + [f"{k} CPU ms" for k in MODEL_VARIANTS] + [
        "reference/fused (CPU)", "fused message/fused (CPU)", "fused wall ms", "search share of fused message",
        "|dE| eV", "max |dF| eV/A"]
    frames = {w: water_box(w) for w in csv_list(args.waters, int)}
    for dtype in csv_list(args.dtypes):
        t = torch.float64 if dtype == "float64" else torch.float32
        modules = model_modules(dtype)
        cutoff = float(modules["fused"].cutoff)
        for waters, frame in frames.items():
            pos = torch.tensor(frame.positions, dtype=torch.float64)
            cell = torch.tensor(np.asarray(frame.cell), dtype=torch.float64)
            pbc = torch.ones(3, dtype=torch.bool)
            graph = (pos.to(t), cell.to(t), pbc, cutoff)
            search = interleaved_calls({"torch": lambda: torch_search(*graph),
                            "op": lambda: torch.ops.maskpot.neighbor_pairs(*graph)}, 3 * args.repeats)
            edges = torch.ops.maskpot.neighbor_pairs(*graph)[0].shape[1]
            search_rows.append([waters, 3 * waters, dtype, edges, f"{search['torch'][0]:.2f}", f"{search['op'][0]:.2f}",
                                f"{search['torch'][0] / search['op'][0]:.1f}", f"{search['torch'][1]:.2f}",
                                f"{search['op'][1]:.2f}"])
            print(markdown_table(search_head, search_rows[-1:]), flush=True)
            inputs = (pos, torch.tensor(frame.numbers), cell, pbc)
            out = {k: m(*inputs) for k, m in modules.items()}
            med = interleaved_calls({k: (lambda m=m: m(*inputs)) for k, m in modules.items()}, args.repeats)
            cpu = {k: med[k][0] for k in MODEL_VARIANTS}
            d_e = abs(float(out["fused"][0] - out["reference"][0]))
            d_f = float((out["fused"][1] - out["reference"][1]).abs().max())
            share = search["torch"][0] / cpu["fused message"]
            model_rows.append([waters, 3 * waters, dtype] + [f"{cpu[k]:.1f}" for k in MODEL_VARIANTS] + [
                f"{cpu['reference'] / cpu['fused']:.2f}", f"{cpu['fused message'] / cpu['fused']:.2f}",
                f"{med['fused'][1]:.1f}", f"{100 * share:.0f} %", f"{d_e:.2g}", f"{d_f:.2g}"])
            print(markdown_table(model_head, model_rows[-1:]), flush=True)
    print("\nneighbour search alone\n")
    print(markdown_table(search_head, search_rows))
    print("\nASE export, energy + forces per call\n")
    print(markdown_table(model_head, model_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
