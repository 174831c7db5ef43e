#!/usr/bin/env bash
# The main job on the bundled water data (run through ./setup.sh demo, which activates the environment).
set -euo pipefail
OUT="${MASKPOT_DEMO_DIR:-demo}"
DATA="${MASKPOT_DATA:-../shared/data/water}"
mkdir -p "$OUT"
maskpot data tip3p --molecules 64 --frames 20 --out "$OUT/tip3p.extxyz"
maskpot data info "$DATA/deepmd_water" "$DATA/n2p2_H2O_RPBE-D3/input.data" "$OUT/tip3p.extxyz"
