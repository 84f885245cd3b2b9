"""Committed results of complete runs: one JSON per run under results/, and the table in results/README.md.

A record holds what a reader needs to trust the number: recipe, dataset,
ratio, seeds, epochs; final-epoch top-1 (the result), many/medium/few,
head/mid/tail and per-class accuracy; the best epoch, chosen on the test set
and labelled so; the per-class Hessian summary when `tailsam hessian` was run
(RUN/hessian/results.json); the device (GPU name, or CPU model and bf16
flags), precision, wall time over all sessions, and the tailsam commit.

    python benchmarks/results.py record RUN_DIR [RUN_DIR ...] [--results results] [--force]
    python benchmarks/results.py record --pack OUT/records_cifar10.json [--results results]
    python benchmarks/results.py table [--results results]

`reproduce_cifar10.py` packs the records of its finished runs into one file
({"records": [...]}, `--pack`), so a GPU machine returns them in one piece.
Only runs that reached their last epoch with the recipe's own settings are
results (evaluating more often, the device and the data folder may differ);
a record is not replaced without --force. The table is rewritten from every
JSON in the folder each time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tailsam.config import config_from_dict
from tailsam.errors import ConfigError, UserError
from tailsam.recipes import RECIPES, get_recipe
from tailsam.run.directory import atomic_write, write_json

RESULTS = Path(__file__).resolve().parents[1] / "results"
GROUPS = ("many", "medium", "few", "head", "mid", "tail")
TABLE_FILE = "README.md"


def run_record(run_dir: str | Path, note: str | None = None) -> dict:
    """The result record of a finished run directory; UserError when it is not complete.

    `note`: what the files cannot tell (e.g. the run changed its thread count when resumed).
    """
    run = Path(run_dir)
    if not (run / "final.json").is_file():
        raise UserError(f"{run}: no final.json, so not a finished run; only complete runs are results")
    config, env, final = (_read(run / name) for name in ("config.json", "env.json", "final.json"))
    epochs = config["train"]["epochs"]
    if final["epoch"] != epochs:
        raise UserError(f"{run}: final.json is for epoch {final['epoch']} of {epochs}; only complete runs are results")
    recipe, data = config["recipe"], config["data"]
    spectra_file = run / "hessian" / "results.json"
    return {
        "recipe": recipe, "dataset": data["dataset"], "ratio": data["ratio"], "data_seed": data["seed"],
        "seed": config["train"]["seed"], "epochs": epochs,
        "paper_top1": _paper_top1(recipe, data["ratio"]),
        "top1": final["top1"], "group_accuracy": final["group_accuracy"], "per_class": final["per_class"],
        "train_counts": final["train_counts"],
        "best_epoch_on_test_set": final["best_epoch_on_test_set"],   # selected on the test set: a diagnostic
        "spectra": _spectra(_read(spectra_file)) if spectra_file.is_file() else None,
        "device": env["device"], "gpu": env.get("gpu"), "cpu": env.get("cpu"), "threads": env.get("threads"),
        "precision": config["train"]["precision"], "processes": env.get("processes", 1),
        # The training loop's wall time over all sessions (its first name was wall_s_all_sessions).
        "wall_s": final.get("loop_wall_s", final.get("wall_s_all_sessions")),
        "train_images_per_s": final.get("train_images_per_s"),
        "tailsam_commit": env.get("git_revision"), "torch": env.get("torch"),
        "overrides_vs_recipe": _overrides(recipe, config),
        "note": note,
    }


def _paper_top1(recipe: str, ratio: float) -> float | None:
    """The paper's figure for this recipe at this ratio; None for variants, unknown recipes and other ratios."""
    name, _, variant = recipe.partition(":")
    if variant or name not in RECIPES:
        return None
    return RECIPES.get(name).info.paper_top1.get(_ratio_key(ratio))


def _ratio_key(ratio: float) -> float | int:
    return int(ratio) if float(ratio).is_integer() else ratio


def _spectra(results: dict) -> dict:
    """The per-class summary of a `tailsam hessian` results.json (no densities, no image positions)."""
    keep = ("class_id", "train_count", "n_images", "loss", "accuracy", "lambda_max", "lambda_min",
            "eigenvalue_ratio", "negative_mass", "trace")
    return {"loss": results.get("loss"), "loss_function": results.get("loss_function"), "split": results["split"],
            "steps": results.get("steps", results.get("iters")), "max_images": results["max_images"], "epoch": results["epoch"],
            "classes": [{key: record[key] for key in keep} for record in results["classes"]]}


def _overrides(recipe: str, config: dict) -> dict:
    """Settings that differ from the recipe's own (e.g. train.eval_every), as dotted keys."""
    try:
        base = get_recipe(recipe).to_dict()
    except ConfigError:   # a recipe this checkout does not have
        return {}
    config = config_from_dict(config).to_dict()   # renamed keys (hessian.iters) take today's names
    return {f"{section}.{key}": value for section, values in config.items() if isinstance(values, dict)
            for key, value in values.items() if base.get(section, {}).get(key) != value
            and (section, key) not in (("data", "root"), ("train", "precision"), ("train", "device"))}


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read it ({err})") from None


def record_name(record: dict) -> str:
    ratio = _ratio_key(record["ratio"])
    return f"{record['dataset']}-lt-r{ratio}/{record['recipe']}-seed{record['seed']}.json"


# Settings a result may change from its recipe without being another experiment.
HARMLESS = {"train.eval_every", "train.tensorboard", "data.download"}


def save_records(records: list[dict], folder: Path, *, replace: bool = False) -> list[Path]:
    """Write each record to folder/<dataset>-lt-r<ratio>/<recipe>-seed<S>.json, then the table.

    A record of a run that changed its recipe (other than HARMLESS) or one that
    would replace an existing file is refused, unless `replace` for the latter.
    """
    for record in records:
        changed = sorted(set(record["overrides_vs_recipe"]) - HARMLESS)
        if changed:
            raise UserError(f"{record['recipe']} seed {record['seed']} changed its recipe ({', '.join(changed)}): "
                            "not a result of the recipe; results/ holds the recipes as they are")
        if (folder / record_name(record)).exists() and not replace:
            raise UserError(f"{folder / record_name(record)} exists; give --force to replace it")
    paths = []
    for record in records:
        path = folder / record_name(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, record)
        paths.append(path)
    write_table(folder)
    return paths


def write_table(folder: Path) -> Path:
    records = [json.loads(path.read_text()) for path in sorted(folder.glob("*/*.json"))]
    path = folder / TABLE_FILE
    atomic_write(path, lambda f: f.write((table(records) + "\n").encode()))
    return path


def table(records: list[dict]) -> str:
    """The markdown page: one row per run, beside the paper's figure; spectra below."""
    lines = ["# Results of complete runs", "",
             "Written by `benchmarks/results.py` from the JSON files beside this page (one per run). Top-1 is the",
             "final epoch's test accuracy (%); \"best\" is the highest epoch, chosen on the test set (what the paper",
             "reports as best_acc1): a diagnostic, not a result. Groups: many > 100 training images, medium",
             "20-100, few < 20; head/mid/tail are thirds of the classes by size.", "",
             "| dataset | recipe | seed | epochs | top-1 | paper | best (test-selected) | many | medium | few "
             "| head | mid | tail | device | precision | wall | commit | changed from the recipe | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["dataset"], r["ratio"], r["recipe"], r["seed"])):
        best = r["best_epoch_on_test_set"]
        groups = " | ".join(_number(r["group_accuracy"].get(g)) for g in GROUPS)
        lines.append(
            f"| {r['dataset']}-LT r{_ratio_key(r['ratio'])} | {r['recipe']} | {r['seed']} | {r['epochs']} "
            f"| {r['top1']:.2f} | {_number(r['paper_top1'], 1)} | {best['top1']:.2f} (epoch {best['epoch']}) "
            f"| {groups} | {_device(r)} | {r['precision']} | {_duration(r['wall_s'])} "
            f"| {(r['tailsam_commit'] or '?')[:7]} "
            f"| {', '.join(f'{k}={v}' for k, v in r['overrides_vs_recipe'].items()) or '—'} "
            f"| {r.get('note') or ''} |")
    with_spectra = [r for r in records if r["spectra"]]
    if with_spectra:
        lines += ["", "Per-class Hessian at the final epoch (`tailsam hessian`): lambda_min / lambda_max, clearly",
                  "negative at a saddle.", "",
                  "| dataset | recipe | seed | loss | images/class, Lanczos steps | class (train images): "
                  "lambda_min/lambda_max, lambda_min |", "|---|---|---:|---|---|---|"]
        for r in sorted(with_spectra, key=lambda r: (r["dataset"], r["ratio"], r["recipe"], r["seed"])):
            s = r["spectra"]
            per_class = "; ".join(f"{c['class_id']} ({c['train_count']}): {c['eigenvalue_ratio']:.3f}, "
                                  f"{c['lambda_min']:.3g}" for c in s["classes"])
            lines.append(f"| {r['dataset']}-LT r{_ratio_key(r['ratio'])} | {r['recipe']} | {r['seed']} "
                         f"| {s['loss_function']} | {s['max_images'] or 'all'}, {s['steps']} | {per_class} |")
    return "\n".join(lines)


def _device(record: dict) -> str:
    if record["gpu"]:
        return record["gpu"]
    cpu = record["cpu"] or {}
    flags = ", ".join(cpu.get("bf16_flags", [])) or "no bf16 flags"
    return f"{cpu.get('model', 'CPU')} ({flags}), {record['threads']} thread(s)"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    record = sub.add_parser("record", help="record complete runs (run directories or a pack) and rewrite the table")
    record.add_argument("runs", nargs="*", metavar="RUN_DIR")
    record.add_argument("--pack", help="a JSON list of records written by reproduce_cifar10.py")
    record.add_argument("--results", default=str(RESULTS))
    record.add_argument("--force", action="store_true", help="replace existing records of the same runs")
    record.add_argument("--note", help="what the run's files cannot tell, kept in each record given here")
    show = sub.add_parser("table", help="rewrite and print the table")
    show.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()
    folder = Path(args.results)
    try:
        if args.command == "table":
            print(write_table(folder).read_text())
            return 0
        records = [run_record(run, args.note) for run in args.runs]
        if args.pack:
            records += json.loads(Path(args.pack).read_text())["records"]
        if not records:
            parser.error("give run directories or --pack")
        for path in save_records(records, folder, replace=args.force):
            print(path)
    except UserError as err:
        print(f"results: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
