"""The head of a report: final-epoch accuracy per entry and the sentence saying where the tail did better.

Each entry's row holds top-1 and the six class groups, as the mean and
sample standard deviation (ddof=1) over its seeds (a single run: its value),
the paper's top-1 when its recipe has one at the run's imbalance ratio, and,
kept apart, the best epoch, which was chosen by looking at the test set.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Sequence

from tailsam.config import Config
from tailsam.eval import SHOT_GROUPS, THIRD_GROUPS
from tailsam.recipes import RECIPES
from tailsam.report.sources import Entry

METRICS = ("top1", *SHOT_GROUPS, *THIRD_GROUPS)
# Two entries whose tail accuracies differ by at most this many points are called a tie.
TIE_POINTS = 1.0


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (None for one value) of some values."""

    mean: float
    std: float | None

    def __str__(self) -> str:
        return f"{self.mean:.2f}" + ("" if self.std is None else f" ± {self.std:.2f}")


def mean_std(values: Sequence[float | None]) -> Stat | None:
    """The Stat of the values that are not None (a group without test images is None); None if none are left."""
    values = [value for value in values if value is not None]
    if not values:
        return None
    return Stat(statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Row:
    """One entry's line of the headline table."""

    label: str
    seeds: tuple[int, ...]               # of the runs the numbers come from
    final: bool                          # False: unfinished runs, numbers of their last evaluated epoch
    epochs: tuple[int, ...]              # the epoch each run's numbers are from
    planned_epochs: int
    values: dict[str, Stat | None]       # METRICS -> Stat; None for a group without test images
    paper: float | None                  # the paper's top-1 for this recipe and imbalance ratio
    best: Stat | None                    # best epoch's top-1, chosen on the test set
    best_epochs: tuple[int, ...]
    classes: dict[str, int]              # classes in each group


def headline(entries: Sequence[Entry]) -> list[Row]:
    """One row per entry that has any evaluated epoch, in the entries' order."""
    rows = []
    for entry in entries:
        runs = entry.reported
        if not runs:
            continue
        results = [run.result for run in runs]
        bests = [run.final.get("best_epoch_on_test_set") for run in runs if run.finished]
        bests = [best for best in bests if best]
        values = {"top1": mean_std([r["top1"] for r in results])}
        values |= {group: mean_std([r["group_accuracy"].get(group) for r in results]) for group in METRICS[1:]}
        rows.append(Row(
            label=entry.label, seeds=tuple(run.config.train.seed for run in runs), final=runs[0].finished,
            epochs=tuple(r["epoch"] for r in results), planned_epochs=runs[0].config.train.epochs, values=values,
            paper=paper_top1(runs[0].config), best=mean_std([best["top1"] for best in bests]),
            best_epochs=tuple(best["epoch"] for best in bests),
            classes={group: len(classes) for group, classes in (runs[0].groups or {}).items()},
        ))
    return rows


def paper_top1(config: Config) -> float | None:
    """The paper's top-1 for the run's recipe at its dataset and imbalance ratio (never for a :smoke variant).

    A recipe with one paper figure and the recipe's own ratio gets that figure
    whatever its key: ImageNet-LT's 256 is its split's ratio, not data.ratio.
    """
    name, _, variant = config.recipe.partition(":")
    if variant or name not in RECIPES:
        return None
    entry = RECIPES.get(name)
    recipe, paper = entry.builder(), entry.info.paper_top1
    if recipe.data.dataset != config.data.dataset:
        return None
    if len(paper) == 1 and config.data.ratio == recipe.data.ratio:
        return next(iter(paper.values()))
    return paper.get(config.data.ratio)


def tail_group(rows: Sequence[Row]) -> str:
    """The group the verdict compares: few (under the few threshold) when every row has it, else tail."""
    return "few" if all(row.values.get("few") is not None for row in rows) else "tail"


def verdict(rows: Sequence[Row], config: Config) -> str:
    """One sentence from the numbers: which entry has the better few-group (or tail) accuracy, or a tie
    within TIE_POINTS; for a single entry, how far its tail group sits below its head."""
    group = tail_group(rows)
    rows = [row for row in rows if row.values.get(group) is not None]
    if not rows:
        return ""
    what = _group_words(group, rows[0], config)
    notes = _notes(rows)
    if len(rows) == 1:
        row = rows[0]
        top = "many" if row.values.get("many") is not None else "head"
        gap = row.values[top].mean - row.values[group].mean
        side = "below" if gap >= 0 else "above"
        return (f"{row.label}: the {what} reaches {_pct(row.values[group])}, {abs(gap):.2f} points {side} the "
                f"{_group_words(top, row, config)} ({_pct(row.values[top])}{'; ' + notes if notes else ''}).")
    ranked = sorted(rows, key=lambda row: row.values[group].mean, reverse=True)
    best, runner_up = ranked[0], ranked[1]
    margin = best.values[group].mean - runner_up.values[group].mean
    if margin <= TIE_POINTS:
        tied = [row for row in ranked if best.values[group].mean - row.values[group].mean <= TIE_POINTS]
        listed = ", ".join(f"{row.label} {_pct(row.values[group])}" for row in tied)
        behind = ", ".join(f"{row.label} {_pct(row.values[group])}" for row in ranked[len(tied):])
        return (f"On the {what}, a tie within {TIE_POINTS:g} point: {listed}"
                f"{f'; behind them: {behind}' if behind else ''}{f' ({notes})' if notes else ''}.")
    against = f"{runner_up.label}" + (", the next best" if len(rows) > 2 else "")
    return (f"{best.label} has the better accuracy on the {what}: {_pct(best.values[group])} against "
            f"{_pct(runner_up.values[group])} for {against} (+{margin:.2f} points{'; ' + notes if notes else ''}).")


def _group_words(group: str, row: Row, config: Config) -> str:
    """E.g. "few group (4 classes, under 20 training images)"."""
    many, few = config.eval.many_threshold, config.eval.few_threshold
    rule = {"many": f"over {many} training images", "medium": f"{few} to {many} training images",
            "few": f"under {few} training images", "head": "the largest third", "mid": "the middle third",
            "tail": "the smallest third"}[group]
    classes = row.classes.get(group)
    return f"{group} group ({'' if classes is None else f'{classes} classes, '}{rule})"


def _pct(stat: Stat) -> str:
    return f"{stat}%"


def _notes(rows: Sequence[Row]) -> str:
    """What the numbers are, when it is not one finished run each."""
    notes = []
    if any(len(row.seeds) > 1 for row in rows):
        notes.append("mean ± sample std over seeds")
    if not all(row.final for row in rows):
        notes.append("unfinished runs at their last evaluated epoch")
    return "; ".join(notes)
