#!/usr/bin/env bash
# The paper's CIFAR-LT table on one GPU, unattended, in one command that fits a 600 s call:
#   1. benchmarks/train_step.py: SAM training images/s, the paper code's loop against tailsam, on this card
#      (once per machine: kept in runs/train_step.json, which a held machine keeps between calls);
#   2. benchmarks/reproduce_cifar10.py --dataset $DATASET: LDAM+DRW, LDAM+DRW+SAM (these two start first),
#      CE+DRW, CE+DRW+SAM, VS, VS+SAM, 200 epochs, seed 0, evaluated every epoch, $PARALLEL at once,
#      then the per-class Hessian of the two LDAM runs; beside the paper's figures, with the claims checked.
# Writes a few flat files to $OUT (default ./gpu_out), as the device tool returns them (at most 8, no
# folders): gpu.txt, train_step.json, reproduce_$DATASET.json and .md (the table), records_$DATASET.json
# (every finished run's result record: `python benchmarks/results.py record --pack FILE` commits them) and
# reproduce.log (progress, each run's last lines when it stops). Needs gpudata/$DATASET.npz, which git
# ignores, so carry it with the tree (one dataset per call: each npz is ~60 MiB of the 64 MiB allowed):
#     python benchmarks/make_lt_npz.py ../shared/data gpudata [--dataset cifar100]
#     run(command="bash benchmarks/gpu_reproduce.sh", carry=["gpudata/cifar10.npz"])   # the file, not gpudata/
#     run(command="DATASET=cifar100 bash benchmarks/gpu_reproduce.sh", carry=["gpudata/cifar100.npz"])
# Time: the reproduce step gets one SIGINT at BUDGET_S seconds (default 540) after the start, so it still
# writes its files inside the call's limit (--foreground: plain timeout would signal the process group a
# second time, and a second SIGINT stops runs without a checkpoint). Its runs save checkpoints under
# runs/ on the machine: the same command again, while the machine is held, resumes them.
# PARALLEL (default 6, all six at once): ResNet-32 at batch 128 is bound by kernel launches on a big GPU,
# so one process leaves it mostly idle and several fill each other's gaps (~1-2 GiB of GPU memory each);
# not yet measured against 1, 2, 4 or 8: the JSON's per-run images/s says whether it paid.
# Overrides after -- go to every run (e.g. -- train.compile=reduce-overhead).
# To try the whole script on a CPU (a 1-epoch dry run on 500-image classes; gpudata/ from make_lt_npz.py):
#     PYTHON=.venv/bin/python DEVICE=cpu STEPS=2 BUDGET_S=300 bash benchmarks/gpu_reproduce.sh --epochs 1 \
#         -- data.n_max=500 data.test_per_class=50
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${OUT:-gpu_out}"); mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-540}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-40}
DATASET=${DATASET:-cifar10}
PARALLEL=${PARALLEL:-6}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1 TAILSAM_DATA_ROOT=$PWD/gpudata
[ -f "gpudata/$DATASET.npz" ] || {
    echo "gpu_reproduce.sh: no gpudata/$DATASET.npz; make it: python benchmarks/make_lt_npz.py ../shared/data gpudata --dataset $DATASET" >&2
    exit 2
}
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/gpu.txt"

mkdir -p runs
if [ ! -s runs/train_step.json ]; then
    timeout 150 "$PY" benchmarks/train_step.py --device "$DEVICE" --steps "$STEPS" --workers 0 8 --precisions bf16 \
        > runs/train_step.json.part && mv runs/train_step.json.part runs/train_step.json
fi
[ -s runs/train_step.json ] && cp runs/train_step.json "$OUT/" && cat "$OUT/train_step.json"

# Split "--epochs 1 -- key=value" into the script's options and the runs' overrides.
options=(); overrides=()
seen_dashes=0
for arg in "$@"; do
    if [ "$arg" = -- ]; then seen_dashes=1; elif [ $seen_dashes = 1 ]; then overrides+=("$arg"); else options+=("$arg"); fi
done
[ "$DEVICE" = cpu ] && overrides+=(train.device=cpu)

left=$((BUDGET_S - SECONDS))
timeout --foreground --preserve-status -s INT -k 60 "$((left > 30 ? left : 30))" \
    "$PY" benchmarks/reproduce_cifar10.py --dataset "$DATASET" --parallel "$PARALLEL" \
    ${options[@]+"${options[@]}"} ${overrides[@]+"${overrides[@]}"} \
    > "$OUT/reproduce_$DATASET.json" 2> >(tee -a "$OUT/reproduce.log" >&2)
status=$?
wait   # for tee
# The sweep's folder is in the JSON (absent when the script stopped before training: bad input or data).
runs=$("$PY" -c 'import json, os, sys; print(os.path.dirname(json.load(open(sys.argv[1]))["sweep_summary"]))' \
       "$OUT/reproduce_$DATASET.json" 2>/dev/null)
if [ -n "$runs" ]; then
    for name in "reproduce_$DATASET.md" "records_$DATASET.json"; do
        [ -f "$runs/$name" ] && cp "$runs/$name" "$OUT/"
    done
    # The last lines of each run's log, so a failure or a stop is visible without the run directories.
    for log in "$runs"/*/seed*/train.log; do
        [ -f "$log" ] && { echo "== $log"; tail -n 3 "$log"; } >> "$OUT/reproduce.log"
    done
fi
echo "gpu_reproduce.sh: reproduce_cifar10.py exit status $status (0 complete, 1 a run failed, 2 bad input, 130 stopped at BUDGET_S: run again to resume)"
exit "$status"
