"""The long-tail SAM family side by side (issue 17): every variant with the same loss, on CIFAR-10-LT and
CIFAR-100-LT ratio 100, through `tailsam sweep`, at the final epoch, mean and std over seeds.

    python benchmarks/ltsam_table.py --out runs/ltsam --seeds 0 1 2 --data-root ../shared/data
    python benchmarks/ltsam_table.py --out runs/ltsam-dry --epochs 1 --hessian --data-root ../shared/data \\
        -- data.n_max=500 data.test_per_class=50                      # the dry run: minutes on a CPU

Two tables per dataset:
- CE, no DRW (the loss ImbSAM and SSE-SAM publish): SGD and SAM (the seed paper's CE recipes), ImbSAM,
  SSE-SAM, Focal-SAM (its LA replaced by CE) and CC-SAM, each with its published hyper-parameters;
- LDAM+DRW (the seed paper's): SGD, SAM, SAM after DRW, and ImbSAM, SSE-SAM and Focal-SAM dropped into the
  seed paper's loss and optimizer with their own radii (tailsam's extension; CC-SAM has its own loss and
  schedule and is left out).
Each row is one `tailsam sweep` (reused and resumed when the command runs again). Per row the script adds:
forward and backward passes through the backbone per step, counted on its first convolution; training
images/s of the row's own config over `--time-steps` steps, and its ratio to the SGD row of the same table,
measured in this process one row after another; with `--hessian`, `tailsam hessian` on the first seed's
model (classes 0, 4 and 9). It writes OUT/ltsam_table.json and OUT/ltsam_table.md and prints the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from method_steps import time_steps  # noqa: E402  (benchmarks/, this script's folder)
from tailsam.config import load_config  # noqa: E402
from tailsam.run.precision import cpu_description  # noqa: E402

# The seed paper's loss and optimizer (LDAM on the cosine head, DRW from epoch 161, lr 0.1 with warm-up and
# decays, batch 128, weight decay 2e-4) with a method's own radius and settings.
LDAM_DRW = ("loss.name=ldam", "loss.weighting=drw", "model.head=normed", "optim.lr=0.1",
            "optim.lr_schedule=paper_cifar", "optim.batch_size=128", "optim.weight_decay=2e-4")
# (label, recipe after the dataset's name, overrides) per table; the first row is the SGD baseline.
TABLES = {
    "ce": [("SGD", "ce", ()), ("SAM", "ce-sam", ()), ("ImbSAM", "imbsam", ()), ("SSE-SAM", "sse-sam", ()),
           ("Focal-SAM", "focal-sam", ("loss.name=ce",)), ("CC-SAM", "cc-sam", ())],
    "ldam-drw": [("SGD", "ldam-drw", ()), ("SAM", "ldam-drw-sam", ()),
                 ("SAM after DRW", "ldam-drw-sam-after-drw", ()), ("ImbSAM", "imbsam", LDAM_DRW),
                 ("SSE-SAM", "sse-sam", LDAM_DRW), ("Focal-SAM", "focal-sam", LDAM_DRW)],
}
GROUPS = ("top1", "many", "medium", "few")
HESSIAN = "hessian-ltsam"   # the analysis folder inside each row's first run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100"])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="train.epochs for every run, milestones moved (a dry run)")
    parser.add_argument("--time-steps", type=int, default=10, help="timed steps per row (0: no timing)")
    parser.add_argument("--hessian", action="store_true",
                        help="tailsam hessian on each row's first seed (without it, an earlier analysis is read)")
    parser.add_argument("--hessian-images", type=int, default=128)
    parser.add_argument("--hessian-steps", type=int, default=40)
    parser.add_argument("overrides", nargs="*", help="after --: dotted overrides for every run")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets:
        for table in args.tables:
            sgd_images_per_s = None
            for label, suffix, overrides in TABLES[table]:
                row = run_row(args, dataset, table, label, f"{dataset}-{suffix}", [*overrides, *args.overrides])
                sgd_images_per_s = sgd_images_per_s or row.get("images_per_s")
                if row.get("images_per_s") and sgd_images_per_s:
                    row["speed_vs_sgd"] = round(row["images_per_s"] / sgd_images_per_s, 3)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    result = {"commit": commit, "cpu": cpu_description(),
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "seeds": args.seeds,
              "epochs": args.epochs, "overrides": args.overrides, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ltsam_table.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "ltsam_table.md").write_text(markdown(result))
    print(json.dumps(result, indent=1))


def run_row(args, dataset: str, table: str, label: str, recipe: str, overrides: list[str]) -> dict:
    """One row: its sweep, then the timing, the pass counts and the spectra of its first seed's run."""
    if args.epochs:   # the sweep moves DRW's start and the schedules' milestones with it
        overrides = [*overrides, f"train.epochs={args.epochs}"]
    folder = args.out / dataset / table / re.sub(r"[^a-z0-9]+", "-", label.lower())
    command = [sys.executable, "-m", "tailsam", "sweep", recipe, f"seeds={','.join(map(str, args.seeds))}",
               *overrides, "--out", str(folder), "--data-root", args.data_root]
    started = time.perf_counter()
    status = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
    row = {"dataset": dataset, "table": table, "label": label, "recipe": recipe, "overrides": overrides,
           "sweep": str(folder), "sweep_status": status, "sweep_s": round(time.perf_counter() - started, 1)}
    if not (folder / "summary.json").exists():   # refused before training (exit 2): its reason is on stderr
        return row
    summary = json.loads((folder / "summary.json").read_text())["recipes"].get(recipe, {})
    for group in GROUPS:
        if group in summary:
            row[group] = {"mean": summary[group]["mean"], "std": summary[group]["std"]}
    first_run = folder / recipe / f"seed{args.seeds[0]}"
    if not (first_run / "config.json").exists():
        return row
    row.update(passes_and_speed(load_config(first_run / "config.json"), args.time_steps))
    if args.hessian and (first_run / "final.json").exists():
        analyse(first_run, args)
    if (first_run / HESSIAN / "results.json").exists():   # this command's, or an earlier one's
        classes = json.loads((first_run / HESSIAN / "results.json").read_text())["classes"]
        row["spectra"] = {str(c["class_id"]): {"lambda_min": c["lambda_min"], "lambda_max": c["lambda_max"],
                                               "ratio": c["eigenvalue_ratio"]} for c in classes}
    return row


def passes_and_speed(config, steps: int) -> dict:
    """Backbone passes per step and images/s over `steps` steps of the first epoch (method_steps.time_steps),
    on the full long-tailed training set (a dry run's data.n_max lifted)."""
    timed = time_steps(dataclasses.replace(config, data=dataclasses.replace(config.data, n_max=None)), steps)
    return {key: timed[key] for key in ("passes_per_step", "precision", "images_per_s")}


def analyse(run: Path, args) -> None:
    """`tailsam hessian` of classes 0, 4 and 9 of the run's final model, into RUN/hessian-ltsam."""
    subprocess.run(
        [sys.executable, "-m", "tailsam", "hessian", str(run), "--classes", "0", "4", "9", "--max-images",
         str(args.hessian_images), "--steps", str(args.hessian_steps), "--data-root", args.data_root,
         "--out", str(run / HESSIAN), "--force"], stdout=subprocess.DEVNULL, check=True)


def markdown(result: dict) -> str:
    lines = [f"Commit {result['commit']}; CPU: {result['cpu']}; GPU: {result['gpu']}; torch {result['torch']}, "
             f"{result['threads']} threads; "
             f"seeds {result['seeds']}; epochs {result['epochs'] or 'the recipes'}; overrides {result['overrides']}",
             "Final-epoch test top-1 and many/medium/few (%, mean ± sample std over seeds). Passes through the "
             "backbone and images/s are of epoch 1's steps, on the full long-tailed training set: SAM after DRW "
             "costs SAM's after DRW switches on, SSE-SAM drops one pass when its head radius goes off, CC-SAM's "
             "stage 2 runs no backbone backward.", ""]
    for (dataset, table), rows in _grouped(result["rows"]).items():
        lines += [f"### {dataset}, {table}", "",
                  "| variant | recipe | top-1 | many | medium | few | fwd/bwd per step | images/s | vs SGD | "
                  "lambda_min/lambda_max, classes 0 / 4 / 9 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for row in rows:
            cells = [_cell(row.get(group)) for group in GROUPS]
            passes = row.get("passes_per_step", {})
            ratios = " / ".join(f"{s['ratio']:.3f}" for s in row.get("spectra", {}).values()) or "-"
            lines.append(f"| {row['label']} | {row['recipe']} | {' | '.join(cells)} | "
                         f"{passes.get('forward', '-')}/{passes.get('backward', '-')} | "
                         f"{row.get('images_per_s', '-')} | {row.get('speed_vs_sgd', '-')} | {ratios} |")
        lines.append("")
    return "\n".join(lines)


def _grouped(rows: list[dict]) -> dict:
    grouped: dict = {}
    for row in rows:
        grouped.setdefault((row["dataset"], row["table"]), []).append(row)
    return grouped


def _cell(value: dict | None) -> str:
    if not value or value["mean"] is None:
        return "-"
    return f"{value['mean']:.2f}" + (f" ± {value['std']:.2f}" if value["std"] is not None else "")


if __name__ == "__main__":
    main()
