"""Training images/s of a recipe's method for a few steps, and the 200-epoch time it projects.

    python benchmarks/method_steps.py --recipe cifar10-glmc-sam-r50 --steps 20 --data-root ../shared/data

Builds the run as `tailsam train` does (data, model, method, optimizer; train.precision as the recipe's,
`auto` by default), trains `--steps` steps of the first epoch after `--warmup` untimed ones, and prints
JSON: images/s, seconds per step, backbone passes per step, and the projected time of one epoch and of the
recipe's epochs (training only; evaluation excluded). `time_steps` is also benchmarks/ltsam_table.py's. Quote the CPU or GPU with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tailsam.config import Config, apply_overrides  # noqa: E402  (after the path above)
from tailsam.optim import apply_schedules  # noqa: E402
from tailsam.resources import peak_memory  # noqa: E402
from tailsam.recipes import recipe_with_overrides  # noqa: E402
from tailsam.run.build import build_training  # noqa: E402
from tailsam.run.precision import cpu_description, resolve_auto  # noqa: E402
from tailsam.run.processes import Processes  # noqa: E402
from tailsam.train.distributed import process_device  # noqa: E402


def time_steps(config: Config, steps: int, warmup: int = 1) -> dict:
    """Build the run of `config` as `tailsam train` does and time `steps` steps of its first epoch, after
    `warmup` untimed ones, at least one (schedules set for epoch 1, as the loop sets them).

    Returns the precision, images/s, seconds per step and the training set's size, and the backbone's
    forward and backward passes in the first step (hooks on its first convolution).
    """
    processes = Processes()
    processes = processes.on(process_device(config.train.device, processes))
    config = apply_overrides(config, [f"train.precision="
                                      f"{resolve_auto(config.train.precision, processes.device, config.model.name)}"])
    training = build_training(config, processes)
    method = training.method
    conv = next(m for m in training.model.modules() if isinstance(m, nn.Conv2d))
    passes = {"forward": 0, "backward": 0}
    hooks = [conv.register_forward_hook(lambda *_: passes.__setitem__("forward", passes["forward"] + 1)),
             conv.weight.register_hook(lambda grad: passes.__setitem__("backward", passes["backward"] + 1))]
    apply_schedules(training.optimizer, 1, lr=training.lr_schedule, rho=training.rho_schedule)
    method.start_epoch(1)
    batches = iter(method.batches)
    method.step(next(batches))   # counted, untimed: the first step also allocates
    for hook in hooks:
        hook.remove()
    for _ in range(warmup - 1):
        method.step(next(batches))
    sync = torch.cuda.synchronize if processes.device.type == "cuda" else (lambda: None)
    sync()   # a GPU runs the steps asynchronously: time them from an idle device to an idle device
    images, started = 0, time.perf_counter()
    for _ in range(steps):
        images += len(method.step(next(batches)).labels)
    sync()
    seconds = time.perf_counter() - started
    return {"precision": training.precision.name, "device": str(processes.device),
            "images_per_s": round(images / seconds, 1) if steps else None,
            "seconds_per_step": round(seconds / steps, 3) if steps else None,
            "epoch_images": training.data.train.num_images, "passes_per_step": passes,
            **peak_memory(processes.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.precision=fp32")
    args = parser.parse_args()
    config, _ = recipe_with_overrides(args.recipe, [f"data.root={args.data_root}", *args.overrides])
    timed = time_steps(config, args.steps, args.warmup)
    per_s, epoch_images = timed["images_per_s"], timed.pop("epoch_images")
    print(json.dumps({
        "recipe": args.recipe, "steps": args.steps, "batch": config.optim.batch_size,
        "gpu": torch.cuda.get_device_name() if timed["device"].startswith("cuda") else None,
        "cpu": cpu_description(), "threads": torch.get_num_threads(), **timed,
        "projected_epoch_s": round(epoch_images / per_s, 1),
        "projected_run_h": round(epoch_images / per_s * config.train.epochs / 3600, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
