"""Training speed of two commits of tailsam, same machine, same run: one epoch of a recipe, alternated.

    python benchmarks/loop_speed.py --old 5739274 --new HEAD --data-root ../shared/data [--runs 3]

Each commit is checked out once as a git worktree under runs/loop_speed/ and trains one epoch of
`--recipe` (default cifar10-ldam-drw-sam, real CIFAR-10-LT, train.precision=auto) `--runs` times,
old and new alternating so that a drift of the machine falls on both. A run's speed is final.json's
`train_images_per_s` (training steps only, evaluation excluded; evaluation is cut to 10 test images
per class). Prints JSON: every figure, the medians and new/old. Needs an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tailsam.run.precision import cpu_description  # noqa: E402  (after the path above)


def worktree(commit: str, folder: Path) -> tuple[str, Path]:
    """(full hash, a checkout of `commit`), made once."""
    sha = subprocess.run(["git", "rev-parse", commit], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    path = folder / sha[:10]
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return sha, path


def one_epoch(code: Path, recipe: str, data_root: str, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "tailsam", "train", recipe, "train.epochs=1", "data.test_per_class=10",
               "train.tensorboard=false", "--data-root", data_root, "--out", str(out), "--quiet"]
    subprocess.run(command, env={**os.environ, "PYTHONPATH": str(code / "src")}, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "final.json").read_text())["train_images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True)
    parser.add_argument("--new", default="HEAD")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--recipe", default="cifar10-ldam-drw-sam")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    folder = ROOT / "runs" / "loop_speed"
    commits = {"old": worktree(args.old, folder), "new": worktree(args.new, folder)}
    speeds = {"old": [], "new": []}
    for i in range(args.runs):
        for label, (_, code) in commits.items():
            speeds[label].append(one_epoch(code, args.recipe, os.path.abspath(args.data_root),
                                           folder / f"{label}-run"))
            print(f"run {i + 1} {label}: {speeds[label][-1]} images/s", file=sys.stderr, flush=True)
    medians = {label: statistics.median(values) for label, values in speeds.items()}
    print(json.dumps({
        "recipe": args.recipe, "epochs": 1, "cpu": cpu_description(), "cores": len(os.sched_getaffinity(0)),
        "commits": {label: sha for label, (sha, _) in commits.items()},
        "train_images_per_s": speeds, "median": medians, "new_over_old": round(medians["new"] / medians["old"], 4),
    }, indent=1))


if __name__ == "__main__":
    main()
