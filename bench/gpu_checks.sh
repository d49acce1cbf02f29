#!/usr/bin/env bash
# Every GPU check and timing of issue 7 in one call, so that all ratios come from one card.
# On a machine with a GPU, from the repository root, with the naive reference copied into a git-ignored folder:
#   mkdir -p .device && cp ../shared/bench/naive_reference.py .device/ && bash bench/gpu_checks.sh
# Writes CSV/JSON under $OUT (default /tmp/gpu_checks) and prints the tables.
set -euo pipefail
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
export OUT PYTHONPATH=src
python3 .device/naive_reference.py                     # the naive eager anchor on this card
bench() { python3 bench/train_throughput.py --device cuda --steps 30 --warmup 10 "$@"; }
bench --models drmoe --precision fp32 --out "$OUT/drmoe_fp32.csv"
bench --models all --precision bf16 --channels-last --out "$OUT/all_bf16.csv"
bench --models all --precision bf16 --channels-last --compile --out "$OUT/all_bf16_compile.csv"
bench --models drmoe --precision bf16 --channels-last --compile --data real --decode device --workers 8 \
  --out "$OUT/drmoe_real_nvjpeg.csv"
bench --models drmoe --precision bf16 --channels-last --compile --data real --decode cpu --workers 14 \
  --out "$OUT/drmoe_real_cpu_workers.csv"
