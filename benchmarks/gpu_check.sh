#!/usr/bin/env bash
# One unattended GPU check: the test suite, CUDA-path sync check, and the loader, train-step and
# 30-epoch benchmarks on CIFAR-10-LT. Needs gpudata/cifar10.npz (benchmarks/make_lt_npz.py) in the
# tree; writes JSON to $OUT (or ./gpu_out). `gpu_check.sh quick` skips the 30-epoch runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1 TAILSAM_DATA_ROOT=$PWD/gpudata
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
timeout 120 python3 -m pytest -q -x -p no:cacheprovider tests/test_loader.py tests/test_sam.py tests/test_eval.py 2>&1 | tail -3
python3 - <<'PY' 2>&1 | tee "$OUT/sync_check.txt"
# Count host synchronisations per epoch of a SAM run on CUDA: they must not grow with the steps.
import warnings, torch
from tailsam.config import apply_overrides
from tailsam.recipes import get_recipe
from tailsam.train import train
config = apply_overrides(get_recipe("cifar10-ldam-drw-sam:smoke"), ["data.n_max=2000", "train.eval_every=100"])
torch.cuda.set_sync_debug_mode("warn")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    train(config, "/tmp/sync_run", verbose=False)
torch.cuda.set_sync_debug_mode(0)
steps = 2 * -(-sum(__import__("json").load(open("/tmp/sync_run/data.json"))["counts"]) // 128)
print({"epochs": 2, "steps": steps, "synchronising_calls": len(caught)})
for w in caught[:12]:
    print(str(w.message)[:160], w.filename.split("/")[-1], w.lineno)
PY
python3 benchmarks/loader.py --device cuda --epochs 3 --workers 0 8 > "$OUT/loader.json"; cat "$OUT/loader.json"
python3 benchmarks/train_step.py --device cuda --steps 40 --workers 0 8 --precisions bf16 > "$OUT/train_step.json"; cat "$OUT/train_step.json"
[ "${1:-}" = quick ] && exit 0
timeout 300 python3 benchmarks/cifar_short.py --out /tmp/cifar_short > "$OUT/cifar_short.json"; cat "$OUT/cifar_short.json"
