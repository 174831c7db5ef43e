#!/usr/bin/env bash
# The main job on the bundled water data (run through ./setup.sh demo, which activates the environment):
# data -> masked pretraining -> finetuning -> evaluation -> export -> MD in OpenMM and LAMMPS -> quick benchmark.
# About 10-15 minutes on 2 CPU cores. MASKPOT_DEMO_DIR sets the output folder (default: demo/).
set -euo pipefail
OUT="${MASKPOT_DEMO_DIR:-demo}"
DATA="${MASKPOT_DATA:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../shared/data/water}"
W="$DATA/deepmd_water"
PRETRAIN_STEPS="${MASKPOT_DEMO_PRETRAIN_STEPS:-400}"
STEPS="${MASKPOT_DEMO_STEPS:-600}"
mkdir -p "$OUT"

echo "== 1. data"
maskpot data info "$W" "$DATA/n2p2_H2O_RPBE-D3/input.data"
maskpot data tip3p --molecules 64 --box 12.42 --frames 10 --out "$OUT/tip3p.extxyz"

echo "== 2. masked pretraining on the training geometries (data_0..data_2), read-out: the model's own forces"
maskpot pretrain "$W/data_0" "$W/data_1" "$W/data_2" --model painn --objective mask --readout force --mask-ratio 0.5 \
  --max-steps "$PRETRAIN_STEPS" --out "$OUT/pretrained.ckpt"

echo "== 3. finetuning the whole pretrained model on energies and forces (50 training frames), test on data_3"
maskpot finetune "$W/data_0" "$W/data_1" "$W/data_2" --init "$OUT/pretrained.ckpt" --train-frames 50 \
  --max-steps "$STEPS" --out "$OUT/model.ckpt"
maskpot evaluate "$OUT/model.ckpt" "$W/data_3" --plot "$OUT/parity.png"

echo "== 4. export"
for target in openmm lammps ase; do
  maskpot export "$OUT/model.ckpt" --target "$target" --out "$OUT/model-$target.pt"
done
maskpot info "$OUT/model-openmm.pt"

echo "== 5. MD: OpenMM, then LAMMPS on 1 and 2 MPI ranks"
maskpot md "$OUT/model-openmm.pt" --engine openmm --structure "$W/data_3" --steps 200 --out "$OUT/md-openmm"
maskpot md "$OUT/model-lammps.pt" --engine lammps --nprocs 1 --structure "$W/data_3" --steps 200 --out "$OUT/md-lammps"
# Two ranks: domain decomposition, node states of ghost atoms exchanged between layers (see lammps/README.md)
maskpot md "$OUT/model-lammps.pt" --engine lammps --nprocs 2 --structure "$W/data_3" --steps 200 --out "$OUT/md-lammps-2ranks"

echo "== 6. quick speed benchmark"
python "$(dirname "${BASH_SOURCE[0]}")/benchmarks/speed.py" --quick --out "$OUT/bench"
echo "demo finished: outputs in $OUT/"
