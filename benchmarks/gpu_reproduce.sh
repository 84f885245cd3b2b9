#!/usr/bin/env bash
# The paper's CIFAR-10-LT table on one GPU, unattended, in one command:
#   1. benchmarks/train_step.py: SAM training images/s, the paper code's loop against tailsam, on this card;
#   2. benchmarks/reproduce_cifar10.py: CE+DRW, CE+DRW+SAM, LDAM+DRW, LDAM+DRW+SAM, 200 epochs, seed 0,
#      --parallel 4 (all four at once), beside the paper's 81.9 / 80.6, with the issue's claims checked.
# Writes to $OUT (default ./gpu_out): gpu.txt, train_step.json, reproduce_cifar10.json, reproduce.log
# (progress and the table), and runs/ (the table, summary, and each run's train.log, final.json,
# usage.json, env.json). Needs gpudata/cifar10.npz, which git ignores, so carry it with the tree:
#     python benchmarks/make_lt_npz.py /work/shared/data gpudata     # ~60 MiB
#     bash benchmarks/gpu_reproduce.sh [--epochs N] [--seeds 0 1 2] [--parallel K]   # passed to reproduce_cifar10.py
# Why --parallel 4: ResNet-32 at batch 128 is bound by kernel launches, not arithmetic (bf16 ran slower
# than fp32 on an H200), so one run leaves an H100 idle most of the time; four processes, one per recipe,
# fill each other's gaps, need ~1-2 GiB of GPU memory each and get 16 / 4 = 4 CPU threads each, and the
# table then takes as long as its slowest (SAM) run. The JSON's per-run images/s and peak GPU memory say
# whether more (e.g. --parallel 8 with three seeds) would help.
# Time: the reproduce step gets one SIGINT at BUDGET_S seconds (default 540) after the start, so it
# still writes its JSON inside a 600 s limit (--foreground: plain timeout would signal the process group
# a second time, and a second SIGINT stops runs without a checkpoint). Its runs save checkpoints and live
# in runs/ (ignored by git, kept on a warm machine): the same command again resumes them.
# PYTHON picks the interpreter (default python3). To try the script's logic on a CPU:
#     PYTHON=.venv/bin/python DEVICE=cpu STEPS=2 BUDGET_S=60 bash benchmarks/gpu_reproduce.sh --epochs 1
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${OUT:-gpu_out}"); mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-540}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-40}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1 TAILSAM_DATA_ROOT=$PWD/gpudata
[ -f gpudata/cifar10.npz ] || {
    echo "gpu_reproduce.sh: no gpudata/cifar10.npz; make it: python benchmarks/make_lt_npz.py /work/shared/data gpudata" >&2
    exit 2
}
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__)"; } | tee "$OUT/gpu.txt"

timeout 180 "$PY" benchmarks/train_step.py --device "$DEVICE" --steps "$STEPS" --workers 0 8 > "$OUT/train_step.json"
cat "$OUT/train_step.json"

left=$((BUDGET_S - SECONDS))
timeout --foreground --preserve-status -s INT -k 60 "$((left > 30 ? left : 30))" \
    "$PY" benchmarks/reproduce_cifar10.py --parallel 4 "$@" > "$OUT/reproduce_cifar10.json" 2> >(tee "$OUT/reproduce.log" >&2)
status=$?
wait   # for tee
cat "$OUT/reproduce_cifar10.json"
# The sweep's folder is in the JSON (absent when the script stopped before training: bad input or data).
runs=$("$PY" -c 'import json, os, sys; print(os.path.dirname(json.load(open(sys.argv[1]))["sweep_summary"]))' \
       "$OUT/reproduce_cifar10.json" 2>/dev/null)
if [ -n "$runs" ]; then
    mkdir -p "$OUT/runs"
    (cd "$runs" && cp --parents reproduce_cifar10.md summary.md summary.json "$OUT/runs/"
     for f in */seed*/{train.log,final.json,usage.json,env.json}; do [ -f "$f" ] && cp --parents "$f" "$OUT/runs/"; done)
fi
echo "gpu_reproduce.sh: reproduce_cifar10.py exit status $status (0 complete, 1 a run failed, 2 bad input, 130 stopped at BUDGET_S: run again to resume)"
exit "$status"
