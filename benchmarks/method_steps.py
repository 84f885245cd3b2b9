"""Training images/s of a recipe's method for a few steps, and the 200-epoch time it projects.

    python benchmarks/method_steps.py --recipe cifar10-glmc-sam-r50 --steps 20 --data-root ../shared/data

Builds the run as `tailsam train` does (data, model, method, optimizer; train.precision as the recipe's,
`auto` by default), trains `--steps` steps of the first epoch after `--warmup` untimed ones, and prints
JSON: images/s, seconds per step, and the projected time of one epoch and of the recipe's epochs
(training only; evaluation excluded). Quote the CPU or GPU with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tailsam.config import apply_overrides  # noqa: E402  (after the path above)
from tailsam.resources import peak_memory  # noqa: E402
from tailsam.recipes import recipe_with_overrides  # noqa: E402
from tailsam.run.build import build_training  # noqa: E402
from tailsam.run.precision import cpu_description, resolve_auto  # noqa: E402
from tailsam.run.processes import Processes  # noqa: E402
from tailsam.train.distributed import process_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.precision=fp32")
    args = parser.parse_args()
    config, _ = recipe_with_overrides(args.recipe, [f"data.root={args.data_root}", *args.overrides])
    processes = Processes()
    processes = processes.on(process_device(config.train.device, processes))
    config = apply_overrides(config, [f"train.precision="
                                      f"{resolve_auto(config.train.precision, processes.device, config.model.name)}"])
    training = build_training(config, processes)
    method = training.method
    method.start_epoch(1)
    batches = iter(method.batches)
    for _ in range(args.warmup):
        method.step(next(batches))
    images, started = 0, time.perf_counter()
    for _ in range(args.steps):
        images += len(method.step(next(batches)).labels)
    if processes.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    per_s = images / seconds
    epoch_images = training.data.train.num_images
    print(json.dumps({
        "recipe": args.recipe, "steps": args.steps, "batch": config.optim.batch_size,
        "precision": training.precision.name, "device": str(processes.device),
        "gpu": torch.cuda.get_device_name() if processes.device.type == "cuda" else None,
        "cpu": cpu_description(), "threads": torch.get_num_threads(),
        "images_per_s": round(per_s, 1), "seconds_per_step": round(seconds / args.steps, 3),
        "projected_epoch_s": round(epoch_images / per_s, 1),
        "projected_run_h": round(epoch_images / per_s * config.train.epochs / 3600, 1),
        **peak_memory(processes.device),
    }, indent=1))


if __name__ == "__main__":
    main()
