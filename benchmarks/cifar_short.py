"""A 30-epoch CIFAR-10-LT run of LDAM+DRW against LDAM+DRW+SAM (rho 0.8), seed 0.

The paper's schedule compressed from 200 to 30 epochs by the rule every
`train.epochs` override follows (tailsam.optim.schedules.scale_epochs; a
milestone m acts from epoch m + 1): 1 warm-up epoch, DRW and lr x0.01 after
epoch 24, x0.0001 after epoch 27. ResNet-32, CIFAR-10-LT ratio
100 from the real file. Runs are ordinary run directories under --out, so an
interrupted benchmark resumes where it stopped. Prints one JSON object with the
final-epoch overall, many/medium/few, head/mid/tail and per-class accuracy,
wall time and training images/s of each run, and the peak host RSS and GPU memory.

    python benchmarks/cifar_short.py [--root DIR] [--out runs/cifar_short]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import data_root, memory
from tailsam.recipes import recipe_with_overrides
from tailsam.train import train

SHORT_SCHEDULE = ["train.epochs=30", "train.eval_every=5"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None)
    parser.add_argument("--out", default="runs/cifar_short")
    parser.add_argument("overrides", nargs="*", help="extra config overrides for both runs, e.g. train.device=cuda")
    args = parser.parse_args()
    report = {"benchmark": "cifar_short", "schedule": SHORT_SCHEDULE, "runs": {}}
    for recipe in ("cifar10-ldam-drw", "cifar10-ldam-drw-sam"):
        config, moved = recipe_with_overrides(
            recipe, SHORT_SCHEDULE + [f"data.root={data_root(args.root)}"] + args.overrides)
        report["milestones"] = moved
        out = Path(args.out) / recipe
        start = time.perf_counter()
        final = train(config, out, verbose=True)
        report["runs"][recipe] = {
            "top1": final["top1"], "group_accuracy": final["group_accuracy"], "per_class": final["per_class"],
            "wall_seconds_this_session": round(time.perf_counter() - start, 1),
            "train_images_per_s": final["train_images_per_s"], "rho": config.sam.rho if config.sam.kind != "none" else None,
            "run_dir": str(out),
        }
    report.update(memory())   # peaks over both runs (they train one after the other in this process)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
