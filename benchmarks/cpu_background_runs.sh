#!/usr/bin/env bash
# CPU reproductions of the paper's rows, 200 epochs, seed 0, evaluated every epoch, train.precision=auto,
# in the background, the CPU's cores shared among the unfinished runs (one thread each on 2 cores; two
# threads for the last one). The recipes: $RECIPES (default: the headline pair on CIFAR-10-LT ratio 100,
# LDAM+DRW and LDAM+DRW+SAM). Runs from a copy of the code pinned at one commit ($PIN, a git worktree in
# runs/bg/code-PIN, git-ignored), so later changes to the code cannot change or break them; run
# directories and logs in runs/bg/.
# The same command starts them, or resumes them exactly after a Ctrl-C / SIGINT (they checkpoint):
#     bash benchmarks/cpu_background_runs.sh [DATA_ROOT]        # default ../shared/data
#     RECIPES="cifar100-ldam-drw cifar100-ldam-drw-sam" PIN=abc1234 bash benchmarks/cpu_background_runs.sh
#     pkill -INT -f "tailsam train cifar"                          # pause them (e.g. for timings or the tests)
# A finished run (final.json) is left alone. Then: tailsam hessian runs/bg/RECIPE --classes 0 4 9
# --max-images 128 --steps 40, and python benchmarks/results.py record runs/bg/RECIPE.
set -euo pipefail
cd "$(dirname "$0")/.."
PIN=${PIN:-e033e6c}      # the commit the runs started from; changing it mid-run mixes two codes
RECIPES=${RECIPES:-"cifar10-ldam-drw cifar10-ldam-drw-sam"}
DATA_ROOT=$(realpath "${1:-../shared/data}")
PY=$(realpath -s "${PYTHON:-.venv/bin/python}")   # -s: a venv's python is a symlink to keep
mkdir -p runs/bg
CODE=code-$PIN
[ -d "runs/bg/$CODE" ] || git worktree add -q --detach "runs/bg/$CODE" "$PIN"
cd runs/bg
todo=()
for recipe in $RECIPES; do
    if [ -f "$recipe/final.json" ]; then echo "$recipe: finished"; else todo+=("$recipe"); fi
done
[ ${#todo[@]} -gt 0 ] || exit 0
threads=$(( $(nproc) / ${#todo[@]} )); [ "$threads" -ge 1 ] || threads=1
for recipe in "${todo[@]}"; do
    echo "=== $(date -u +%FT%T) OMP_NUM_THREADS=$threads" >> "$recipe.log"
    OMP_NUM_THREADS=$threads PYTHONPATH=$CODE/src nohup "$PY" -m tailsam train "$recipe" train.eval_every=1 \
        train.precision=auto --data-root "$DATA_ROOT" --out "$recipe" >> "$recipe.log" 2>&1 &
    echo "$recipe: pid $! with $threads thread(s) (log runs/bg/$recipe.log)"
done
