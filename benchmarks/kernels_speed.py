"""Fused against reference PaiNN kernels: energy + forces per step of the ASE export (TorchScript, neighbour
search included) on liquid water boxes, timed side by side in one process.

With maskpot's caching CPU allocator in place, as in the engines. For each size and dtype both exports of the same random-weight default PaiNN are called in turn (interleaved,
so load on the machine hits both alike); CPU time (time.process_time) and wall time per call are printed with
the reference/fused ratio of the medians, and the largest energy and force differences. Prints a table only:
nothing is written (timings under load are not results).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import argument_parser, begin, csv_list, markdown_table  # noqa: E402

KERNELS = ("reference", "fused")


def parse_args(argv=None):
    ap = argument_parser(__doc__)
    ap.add_argument("--waters", default="258,1024", help="water molecules per box (comma-separated)")
    ap.add_argument("--dtypes", default="float32", help="float32,float64")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls of each export")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--out", default="/tmp/maskpot-kernels-speed", help="scratch folder (nothing is kept)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    import numpy as np
    import torch

    from benchmarks.speed import water_box
    from maskpot.allocator import tune_allocator
    from maskpot.export.writer import build_module
    from maskpot.models import ModelConfig, build_potential

    args = parse_args(argv)
    begin(args)
    tune_allocator()  # what maskpot's engines do (the caching CPU allocator, maskpot.allocator)
    rows = []
    for dtype in csv_list(args.dtypes):
        torch.manual_seed(0)
        potential = build_potential(ModelConfig(backbone="painn", species=[1, 8], dtype=dtype,
                                                avg_neighbors=32.0))  # random weights, no data
        modules = {k: build_module(potential, {"species": [1, 8], "backbone": "painn"}, "ase", dtype, k)
                   for k in KERNELS}
        for waters in csv_list(args.waters, int):
            frame = water_box(waters)
            inputs = (torch.tensor(frame.positions, dtype=torch.float64), torch.tensor(frame.numbers),
                      torch.tensor(np.asarray(frame.cell), dtype=torch.float64), torch.ones(3, dtype=torch.bool))
            out = {k: m(*inputs) for k, m in modules.items()}
            for m in modules.values():
                m(*inputs)
            cpu = {k: [] for k in KERNELS}
            wall = {k: [] for k in KERNELS}
            for _ in range(args.repeats):
                for k, m in modules.items():
                    c0, w0 = time.process_time(), time.perf_counter()
                    m(*inputs)
                    cpu[k].append(1e3 * (time.process_time() - c0))
                    wall[k].append(1e3 * (time.perf_counter() - w0))
            med = {k: (statistics.median(cpu[k]), statistics.median(wall[k])) for k in KERNELS}
            d_e = abs(float(out["fused"][0] - out["reference"][0]))
            d_f = float((out["fused"][1] - out["reference"][1]).abs().max())
            rows.append([waters, 3 * waters, dtype, f"{med['reference'][0]:.1f}", f"{med['fused'][0]:.1f}",
                         f"{med['reference'][0] / med['fused'][0]:.2f}", f"{med['reference'][1]:.1f}",
                         f"{med['fused'][1]:.1f}", f"{1e3 * med['fused'][0] / (3 * waters):.0f}", f"{d_e:.2g}",
                         f"{d_f:.2g}"])
            print(markdown_table(["waters", "atoms", "dtype", "ref CPU ms", "fused CPU ms", "ratio (CPU)",
                                  "ref wall ms", "fused wall ms", "fused CPU us/atom", "|dE| eV", "max |dF| eV/A"],
                                 rows[-1:]), flush=True)
    print()
    print(markdown_table(["waters", "atoms", "dtype", "ref CPU ms", "fused CPU ms", "ratio (CPU)", "ref wall ms",
                          "fused wall ms", "fused CPU us/atom", "|dE| eV", "max |dF| eV/A"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
