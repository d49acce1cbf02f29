#!/usr/bin/env bash
# Every GPU check and timing in one call, so that all ratios come from one card.
# From the repository root, with the naive reference copied into the git-ignored folder .device/ beforehand:
#   mkdir -p .device && cp ../shared/bench/naive_reference.py .device/     (where ../shared exists)
#   bash bench/gpu_checks.sh                                                (on the GPU machine; carry .device there)
# Writes CSV/JSON under $OUT (default /tmp/gpu_checks), with the card (card.csv) and the Python, PyTorch, torchvision
# and CUDA versions (versions.txt), and prints the tables. The steps run most important first, each under its own
# time limit and each writing its own file, so that a call cut short still returns the first.
# Every step but `all_compiled` should fit in about 10 minutes together (an estimate: no GPU has run this script
# yet); `all_compiled` needs a second call of its own on a tight device budget:
#   SKIP=all_compiled bash bench/gpu_checks.sh       then       ONLY=all_compiled bash bench/gpu_checks.sh
# ONLY and SKIP take space-separated step names (the "== NAME" headings; the naive reference is `naive_reference`).
# The machine's python3 needs PyTorch with CUDA and the packages the project imports (pyproject.toml). On a machine
# that has PyTorch but cannot reach a package index, put the missing packages' wheels in .device/wheels/ (for
# example jsonschema and its dependencies: `pip download --no-deps --python-version X.Y --only-binary=:all:`); they
# are installed into a temporary folder first. Nothing is timed until the benchmark's imports succeed.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks}
ONLY=${ONLY:-}
SKIP=${SKIP:-}
WHEELS=${WHEELS:-.device/wheels}
wanted() {  # wanted NAME: whether ONLY and SKIP let step NAME run
  [[ -z "$ONLY" || " $ONLY " == *" $1 "* ]] && [[ " $SKIP " != *" $1 "* ]]
}
# A misspelt name would make a GPU call that measures nothing: stop before it starts.
steps="naive_reference $(sed -n 's/^step [0-9]* \([a-z0-9_]*\) .*/\1/p' "${BASH_SOURCE[0]}" | tr '\n' ' ')"
for name in $ONLY $SKIP; do
  if [[ " $steps " != *" $name "* ]]; then
    echo "gpu_checks.sh: no step named '$name' (ONLY/SKIP); the steps: $steps" >&2
    exit 2
  fi
done
mkdir -p "$OUT"
export OUT PYTHONPATH=src
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  site=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$WHEELS"/*.whl || exit 2
  export PYTHONPATH="src:$site"
fi
if ! python3 bench/train_throughput.py --help >/dev/null; then  # the benchmark's imports, and its arguments
  echo "gpu_checks.sh: bench/train_throughput.py cannot start with this python3 (the error above names what is" \
    "missing); install the project's packages, or put their wheels in $WHEELS" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/card.csv"
python3 -c 'import sys, torch, torchvision; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, '\
'torchvision {torchvision.__version__}, CUDA {torch.version.cuda}")' | tee "$OUT/versions.txt"
step() {  # step SECONDS NAME ARGS...: one benchmark call, its table in $OUT/NAME.csv, its log in $OUT/NAME.log
  local seconds=$1 name=$2
  shift 2
  wanted "$name" || return 0
  echo "== $name"
  timeout "$seconds" python3 bench/train_throughput.py --device cuda --steps 30 --warmup 10 --out "$OUT/$name.csv" \
    "$@" 2>&1 | tail -n 20 | tee "$OUT/$name.log"
}
if wanted naive_reference; then  # the naive eager anchor on this card
  echo "== naive_reference"
  if [[ -f .device/naive_reference.py ]]; then
    timeout 150 python3 .device/naive_reference.py 2>&1 | tail -n 30
  else
    echo "no .device/naive_reference.py: copy ../shared/bench/naive_reference.py there (and carry .device); the" \
      "other steps run without it" >&2
  fi
fi
fast=(--precision bf16 --channels-last --fused --compile --compile-mode reduce-overhead)
# The target: DR-MoE at batch 32 through the real data path (nvjpeg), one run, then three runs sharing the GPU.
step 200 drmoe_real_nvjpeg --models drmoe "${fast[@]}" --data real --decode device --workers 4 --compare-naive
step 200 drmoe_real_nvjpeg_3runs --models drmoe "${fast[@]}" --data real --decode device --workers 4 --concurrent-runs 3
# Every model against its own naive eager step: eager with the fused optimizer (quick), then CPU decoding workers
# instead of nvjpeg, then every model compiled with CUDA graphs (slow: about a minute of compilation per model).
step 150 all_eager_fused --models all --precision bf16 --channels-last --fused --compare-naive
# Query2Label's published recipe trains at batch 64 on one GPU (q2l_published, train.published_schedule): does it
# fit this card? peak_gib_per_run answers it; the steps that came before give every model's peak at batch 32.
step 90 q2l_batch64_memory --models q2l --batch 64 --precision bf16 --channels-last --fused --steps 5 --warmup 2
step 120 drmoe_real_cpu_workers --models drmoe "${fast[@]}" --data real --decode cpu --workers 14
step 480 all_compiled --models all "${fast[@]}" --compare-naive
ls -l "$OUT"
