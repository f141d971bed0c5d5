#!/usr/bin/env bash
# The kit's GPU checks in one call, for a machine with one CUDA GPU, most important first, within a budget.
#
#   bash tools/gpu_checks.sh OUT [BUDGET_SECONDS]     # default budget 500 s; everything it writes goes to OUT
#
# 1. the GPU tests (tests/test_gpu.py, and the GPU cases of test_losses/test_metrics);
# 2. tools/bench_e2e.py: the VOC-MLT-sized set (first run, second run, BCE) and Digits fp32 vs bf16 on 3 seeds;
#    the 24-run Digits grid, 8 runs at a time; the VOC-sized exact fp32 run, a run with compiled backbones
#    (torch.compile, inductor) and one profiled epoch;
# 3. tools/bench_speed.py --gpu (step times of BCE and the full method, fp32 and bf16 + channels-last);
# 4. the COCO-MLT-sized set, if time is left. All bench_e2e results go to one JSON (--append).
# It uses the python3 on PATH and the packages already installed (see the README, "On a GPU", for an offline machine).
set -u
OUT=${1:?usage: bash tools/gpu_checks.sh OUT [BUDGET_SECONDS]}; BUDGET=${2:-500}
mkdir -p "$OUT"; T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
upto() { local v=$(( $(left) - $1 )); echo $(( v > 1 ? v : 1 )); }   # a step's --budget: the time left less what follows it (at least 1 s)
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{
  echo "== machine"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  python3 -c "import torch, torchvision, fastai, timm; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'fastai', fastai.__version__, 'timm', timm.__version__)"
  echo "== GPU tests ($(left) s left)"
  timeout 150 python3 -m pytest -x -q -p no:cacheprovider tests/test_gpu.py tests/test_losses.py tests/test_metrics.py -k "gpu or cuda or device" 2>&1 | tail -15
  R=$(mktemp -d)      # the sets and their decoded-image caches, shared by the calls below
  echo "== bench_e2e: VOC-sized first run, second run, BCE; Digits fp32 vs bf16 ($(left) s left)"
  python3 tools/bench_e2e.py --root "$R" --runs "first run,second run,BCE" --digits 3 --jobs 8 --budget $(upto 170) --out "$OUT/bench_e2e.json" --overwrite
  echo "== bench_e2e: the 24-run Digits grid ($(left) s left)"
  python3 tools/bench_e2e.py --root "$R" --no-voc --grid --jobs 8 --budget $(upto 120) --out "$OUT/bench_e2e.json" --append
  echo "== bench_e2e: VOC-sized exact fp32, compiled, one profiled epoch ($(left) s left)"
  python3 tools/bench_e2e.py --root "$R" --runs "exact fp32,compiled" --profile --budget $(upto 70) --out "$OUT/bench_e2e.json" --append
  echo "== bench_speed --gpu ($(left) s left)"
  [ "$(left)" -gt 80 ] && timeout $(( $(left) - 30 )) python3 tools/bench_speed.py --gpu --out "$OUT/bench_speed_gpu.json" 2>&1 | tail -12
  echo "== bench_e2e: COCO-sized ($(left) s left)"
  [ "$(left)" -gt 100 ] && python3 tools/bench_e2e.py --root "$R" --no-voc --coco --runs "first run,second run" --budget $(upto 30) --out "$OUT/bench_e2e.json" --append
  echo "== done in $(( $(date +%s) - T0 )) s"
} 2>&1 | tee "$OUT/log.txt"
