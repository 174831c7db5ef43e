#!/usr/bin/env bash
# Masked pretraining vs training from scratch on DeePMD water (the paper's claim, tested on real data).
# Pretrain on the positions of data_0..data_2, finetune with the same budget from scratch and from the pretrained
# backbone, test on data_3. Run from the repository root with the environment active and PYTHONPATH=$PWD.
# Usage: benchmarks/pretrain_vs_scratch.sh [OUT_DIR] [extra finetune options, e.g. --train-frames 32 --epochs 30]
set -euo pipefail
OUT="${1:-bench-pretrain}"; shift || true
D="${MASKPOT_DATA:-../shared/data}/water/deepmd_water"
TRAIN=("$D/data_0" "$D/data_1" "$D/data_2")
mkdir -p "$OUT"
[ -f "$OUT/pre.ckpt" ] || python -m maskpot pretrain "${TRAIN[@]}" --objective mask --epochs 20 --out "$OUT/pre.ckpt"
python -m maskpot finetune "${TRAIN[@]}" --test "$D/data_3" "$@" --out "$OUT/scratch.ckpt"
python -m maskpot finetune "${TRAIN[@]}" --test "$D/data_3" "$@" --init "$OUT/pre.ckpt" --out "$OUT/masked.ckpt"
for run in scratch masked; do
  echo "$run: $(python -m maskpot evaluate "$OUT/$run.ckpt" "$D/data_3" --json)"
done
