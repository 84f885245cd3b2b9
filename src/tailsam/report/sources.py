"""What a report reads: one run, several runs side by side, or a sweep, as entries of runs.

    entries = collect(["runs/sweep"])                                  # one entry per recipe, its seeds as runs
    entries = collect(["runs/sgd", "runs/sam"], labels=["SGD", "SAM"])  # one entry per run

Everything comes from the files a run directory already holds (config.json,
metrics.jsonl, final.json, env.json, data.json, hessian/results.json):
nothing is rebuilt or evaluated, so a report needs neither the data nor a
device. A sweep is a folder of `<recipe>/seed<S>` run directories
(tailsam.sweep); a folder holding only `seed<S>` run directories is the
seeds of one recipe.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tailsam.config import Config, load_config
from tailsam.errors import UserError
from tailsam.run.directory import RunDir
from tailsam.run.spectra import RESULTS_FILE

SWEEP_SUMMARY = "summary.json"   # written by tailsam.sweep; gives the recipes in the order they were asked for
_SEED_DIR = re.compile(r"seed(\d+)")


@dataclass(frozen=True)
class RunRecord:
    """The files of one run directory, read once; absent or unreadable ones are None."""

    root: Path
    config: Config
    metrics: list[dict]          # metrics.jsonl: one record per evaluated epoch
    final: dict | None           # final.json: only a finished run has it
    env: dict | None
    data: dict | None
    spectra: dict | None         # hessian/results.json (tailsam hessian)

    @property
    def finished(self) -> bool:
        return self.final is not None

    @property
    def evaluated(self) -> list[dict]:
        """The metrics records that hold a test evaluation."""
        return [record for record in self.metrics if "test" in record]

    @property
    def result(self) -> dict | None:
        """Test accuracy at the final epoch (final.json's numbers); for an unfinished run, at its last
        evaluated epoch; None when no epoch was evaluated. Keys: epoch, top1, group_accuracy, per_class."""
        if self.final is not None:
            return {key: self.final[key] for key in ("epoch", "top1", "group_accuracy", "per_class")}
        if not self.evaluated:
            return None
        last = self.evaluated[-1]
        return {"epoch": last["epoch"], **{key: last["test"][key] for key in ("top1", "group_accuracy", "per_class")}}

    @property
    def final_test(self) -> dict | None:
        """The final epoch's full evaluation record in metrics.jsonl (the one with the confusion matrix)."""
        if self.final is None:
            return None
        return next((r["test"] for r in self.evaluated if r["epoch"] == self.final["epoch"]), None)

    @property
    def counts(self) -> list[int] | None:
        """Training images per class."""
        if self.final is not None and "train_counts" in self.final:
            return list(self.final["train_counts"])
        if self.data is not None and "counts" in self.data:
            return list(self.data["counts"])
        return list(self.evaluated[-1]["test"]["train_counts"]) if self.evaluated else None

    @property
    def groups(self) -> dict[str, list[int]] | None:
        """Class ids of many/medium/few and head/mid/tail, as the evaluation defined them."""
        return self.evaluated[-1]["test"]["groups"] if self.evaluated else None

    @property
    def dataset(self) -> str:
        return self.config.data.dataset


@dataclass(frozen=True)
class Entry:
    """What one column of the comparison stands for: a run, or the seeds of one recipe in a sweep."""

    label: str
    runs: tuple[RunRecord, ...]

    @property
    def reported(self) -> tuple[RunRecord, ...]:
        """The runs whose numbers the headline shows: the finished ones, else those with any evaluated epoch."""
        finished = tuple(run for run in self.runs if run.finished)
        return finished or tuple(run for run in self.runs if run.result is not None)

    def run_label(self, run: RunRecord) -> str:
        """The entry's label, with the run's seed when the entry has several runs."""
        return self.label if len(self.runs) == 1 else f"{self.label} seed {run.config.train.seed}"


def collect(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[Entry]:
    """Read the runs and sweeps at `paths` into entries, in the order given.

    `labels` name the entries of runs given one by one (default: the recipe,
    or the folder's name where recipes repeat). A UserError, one line, for a
    path that is neither a run nor a sweep, a path given twice, and runs of
    different datasets.
    """
    if not paths:
        raise UserError("give a run directory, a sweep folder, or several run directories to compare")
    seen: set[Path] = set()
    entries: list[Entry] = []
    for path in map(Path, paths):
        resolved = path.resolve()
        if resolved in seen:
            raise UserError(f"{path} is given twice; give each run or sweep once")
        seen.add(resolved)
        entries.extend(_entries(path))
    if labels is not None:
        if len(labels) != len(entries):
            raise ValueError(f"{len(labels)} labels for {len(entries)} entries")
        entries = [Entry(label, entry.runs) for label, entry in zip(labels, entries)]
    else:
        entries = _distinct_labels(entries)
    _check_same_dataset(entries)
    return entries


def read_run(root: Path) -> RunRecord:
    """One run directory's files; a UserError if its config.json or metrics.jsonl cannot be read."""
    run = RunDir(root)
    return RunRecord(root=root, config=load_config(run.config), metrics=run.read_metrics(),
                     final=_json(run.final), env=_json(run.env), data=_json(run.data),
                     spectra=_json(root / "hessian" / RESULTS_FILE))


def _entries(path: Path) -> list[Entry]:
    if not path.is_dir():
        what = "a file" if path.exists() else "no such folder"
        raise UserError(f"{path}: {what}; give a run directory (tailsam train --out) or a sweep folder "
                        "(tailsam sweep --out)")
    if (path / "config.json").is_file():
        run = read_run(path)
        return [Entry(run.config.recipe or path.name, (run,))]
    seeds = _seed_runs(path)
    if seeds:   # the seeds of one recipe
        runs = tuple(read_run(root) for root in seeds)
        return [Entry(runs[0].config.recipe or path.name, runs)]
    recipes = [folder for folder in _recipe_order(path) if _seed_runs(folder)]
    if not recipes:
        raise UserError(f"{path} is neither a tailsam run (no config.json) nor a sweep (no <recipe>/seed<S> run "
                        "directories); give the --out of tailsam train or tailsam sweep")
    entries = []
    for folder in recipes:
        runs = tuple(read_run(root) for root in _seed_runs(folder))
        entries.append(Entry(runs[0].config.recipe or folder.name, runs))
    return entries


def _seed_runs(folder: Path) -> list[Path]:
    """The seed<S> run directories in `folder`, by seed."""
    found = [(int(match.group(1)), child) for child in folder.iterdir()
             if (match := _SEED_DIR.fullmatch(child.name)) and (child / "config.json").is_file()]
    return [child for _, child in sorted(found)]


def _recipe_order(sweep: Path) -> list[Path]:
    """The sweep's recipe folders: in the order the sweep was given them (summary.json), then any others by name."""
    folders = sorted(child for child in sweep.iterdir() if child.is_dir())
    summary = _json(sweep / SWEEP_SUMMARY) or {}
    asked = [sweep / name.replace(":", "_") for name in summary.get("recipes", {})]   # tailsam.sweep.plan.run_dir
    return [folder for folder in asked if folder in folders] + [folder for folder in folders if folder not in asked]


def _distinct_labels(entries: list[Entry]) -> list[Entry]:
    """Recipe names as labels; where two entries share one, their folders' names, then their paths."""
    labels = [entry.label for entry in entries]
    if len(set(labels)) == len(labels):
        return entries
    for name in (lambda e: e.runs[0].root.name, lambda e: str(e.runs[0].root)):
        labels = [name(entry) if labels.count(entry.label) > 1 else entry.label for entry in entries]
        if len(set(labels)) == len(labels):
            break
    return [Entry(label, entry.runs) for label, entry in zip(labels, entries)]


def _check_same_dataset(entries: list[Entry]) -> None:
    """Accuracies of different datasets (or class sets) side by side would read as a comparison; refuse."""
    runs = [run for entry in entries for run in entry.runs]
    first = runs[0]
    sized = next((run for run in runs if run.counts is not None), first)
    for run in runs[1:]:
        other = first if run.dataset != first.dataset else sized
        classes = None if run.counts is None or other.counts is None else (len(run.counts), len(other.counts))
        if run.dataset != other.dataset or (classes is not None and classes[0] != classes[1]):
            raise UserError(f"cannot compare runs of different datasets: {other.root} is {_dataset(other)}, "
                            f"{run.root} is {_dataset(run)}; report each dataset's runs separately")
        if _thresholds(run) != _thresholds(first):   # their many/medium/few would hold different classes
            raise UserError(f"cannot compare runs whose groups differ: {first.root} has eval many/few thresholds "
                            f"{_thresholds(first)}, {run.root} {_thresholds(run)}; report them separately")


def _thresholds(run: RunRecord) -> tuple[int, int]:
    return run.config.eval.many_threshold, run.config.eval.few_threshold


def _dataset(run: RunRecord) -> str:
    return run.dataset if run.counts is None else f"{run.dataset} ({len(run.counts)} classes)"


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
