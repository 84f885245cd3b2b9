"""A sweep's result: final-epoch accuracy per recipe, mean and sample standard deviation over seeds.

`summarize` gives the JSON (every per-seed value, every run's status, wall
time, peak memory and log); `summary_markdown` the table people read. The
standard deviation is the sample one (ddof=1, `statistics.stdev`): the seeds
are a sample of the runs one could have made. It needs two finished seeds.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from tailsam.eval import SHOT_GROUPS, THIRD_GROUPS
from tailsam.sweep.launch import FAILED, REUSED, TRAINED, Outcome
from tailsam.run.directory import atomic_write, write_json

METRICS = ("top1", *SHOT_GROUPS, *THIRD_GROUPS)
STD_RULE = "sample standard deviation over seeds (ddof=1); null with fewer than 2 finished seeds"
MISSING = "-"


def summarize(outcomes: list[Outcome]) -> dict:
    """The JSON summary of a sweep's outcomes (in plan order)."""
    recipes: dict[str, dict] = {}
    for outcome in outcomes:
        entry = recipes.setdefault(outcome.run.recipe, {"seeds": [], "missing_seeds": [],
                                                        "values": {m: {} for m in METRICS}})
        if not outcome.ok:
            entry["missing_seeds"].append(outcome.run.seed)
            continue
        entry["seeds"].append(outcome.run.seed)
        for metric, value in _metrics(outcome.final).items():
            entry["values"][metric][str(outcome.run.seed)] = value
    for entry in recipes.values():
        for metric, per_seed in entry.pop("values").items():
            entry[metric] = {**_mean_std(list(per_seed.values())), "per_seed": per_seed}
    runs = [_run_record(outcome) for outcome in outcomes]
    return {
        "metric": "final-epoch test accuracy (%)",
        "std": STD_RULE,
        "recipes": recipes,
        "runs": runs,
        "failed": [{key: run[key] for key in ("recipe", "seed", "exit_code", "log", "error")}
                   for run in runs if run["status"] == FAILED],
        "unfinished": [{key: run[key] for key in ("recipe", "seed", "status", "run_dir")}
                       for run in runs if run["status"] not in (REUSED, TRAINED, FAILED)],
    }


def summary_markdown(summary: dict) -> str:
    """The table: one row per recipe, "mean ± std" per metric, then the per-seed top-1 and any failures."""
    header = ["recipe", "n", "top-1", *SHOT_GROUPS, *THIRD_GROUPS, "top-1 per seed"]
    lines = [("Final-epoch test accuracy (%): mean ± sample standard deviation (ddof=1) over the n seeds that "
              "finished (one seed: its value alone). Per-seed values of every column: summary.json."), "",
             "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 2) + "---|"]
    for recipe, entry in summary["recipes"].items():
        cells = [recipe, str(len(entry["seeds"]))] + [_cell(entry[metric]) for metric in METRICS]
        per_seed = ", ".join(f"{seed}: {_number(value)}" for seed, value in entry["top1"]["per_seed"].items())
        lines.append("| " + " | ".join(cells + [per_seed or MISSING]) + " |")
    if summary["failed"]:
        lines += ["", f"Failed runs ({len(summary['failed'])}): see their logs."]
        lines += [f"- {run['recipe']} seed {run['seed']} (exit {run['exit_code']}): {run['log']}"
                  + (f"\n  {run['error']}" if run["error"] else "") for run in summary["failed"]]
    if summary["unfinished"]:
        lines += ["", f"Unfinished runs ({len(summary['unfinished'])}): run the same command again to resume them."]
        lines += [f"- {run['recipe']} seed {run['seed']} ({run['status']}): {run['run_dir']}"
                  for run in summary["unfinished"]]
    return "\n".join(lines)


def _metrics(final: dict) -> dict[str, float | None]:
    return {"top1": final["top1"], **{group: final["group_accuracy"].get(group) for group in METRICS[1:]}}


def _mean_std(values: list[float | None]) -> dict:
    # A group without test images reports None in every seed of a recipe (the split is the same).
    values = [v for v in values if v is not None]
    return {"mean": statistics.mean(values) if values else None,
            "std": statistics.stdev(values) if len(values) >= 2 else None, "n": len(values)}


def _run_record(outcome: Outcome) -> dict:
    run, final, sessions = outcome.run, outcome.final or {}, outcome.sessions()
    peaks = {key: max((s[key] for s in sessions if key in s), default=None)
             for key in ("peak_rss_mib", "peak_gpu_mib")}
    return {
        "recipe": run.recipe, "seed": run.seed, "status": outcome.status, "exit_code": outcome.exit_code,
        "run_dir": str(run.root), "log": str(run.log), "error": outcome.error,
        "top1": final.get("top1"), "group_accuracy": final.get("group_accuracy"),
        "train_images_per_s": final.get("train_images_per_s"),
        "wall_s": None if outcome.wall_s is None else round(outcome.wall_s, 1),
        "wall_s_all_sessions": round(sum(s.get("wall_s", 0) for s in sessions), 1) if sessions else None,
        **peaks,
    }


def _cell(stats: dict) -> str:
    if stats["mean"] is None:
        return MISSING
    return _number(stats["mean"]) + ("" if stats["std"] is None else f" ± {_number(stats['std'])}")


def _number(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def write_summary(summary: dict, markdown: str, out: str | Path) -> tuple[Path, Path]:
    """OUT/summary.json and OUT/summary.md; returns their paths."""
    out = Path(out)
    json_path, md_path = out / "summary.json", out / "summary.md"
    write_json(json_path, summary)
    atomic_write(md_path, lambda f: f.write((markdown + "\n").encode()))
    return json_path, md_path
