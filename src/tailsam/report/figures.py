"""The report's accuracy figures, as inline SVG: per-class accuracy by class size, learning curves, confusion.

Each function takes the report's entries and returns the `<svg>` markup, or
None when no run holds the data it draws. Every entry keeps one colour
through the page (tailsam.report.drawing); an entry of several seeds is drawn as
their mean with the sample standard deviation around it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tailsam.config import Config
from tailsam.eval import SHOT_GROUPS
from tailsam.report.drawing import colour, legend_above, mark_drw, plain, svg
from tailsam.report.plots import class_axis, count_axis
from tailsam.report.sources import Entry, RunRecord
from tailsam.run.build import build_schedules

# Above this many classes, per-class points are drawn small and summarised by their mean in bins of class size.
MANY_CLASSES = 50
SIZE_BINS = 12
# A confusion matrix of more classes is shown as blocks of classes of neighbouring size, this many a side.
CONFUSION_BLOCKS = 100
# Up to this many classes, each cell of the confusion matrix shows its value.
CONFUSION_NUMBERS = 12


def per_class_accuracy(entries: Sequence[Entry]) -> str | None:
    """Test accuracy of each class against its training images (log x), one series per entry."""
    from matplotlib.figure import Figure

    series = [(i, entry, [run.result for run in entry.reported]) for i, entry in enumerate(entries) if entry.reported]
    if not series:
        return None
    figure = Figure(figsize=(9, 4.6), layout="constrained")
    axes = figure.subplots()
    named: dict[int, int] = {}
    for i, entry, results in series:
        tested = [c for c, a in enumerate(results[0]["per_class"]) if a is not None]   # classes with test images
        counts = np.array(entry.reported[0].counts)[tested]
        per_class = np.array([[r["per_class"][c] for c in tested] for r in results], dtype=float)
        mean = per_class.mean(axis=0)
        order = np.argsort(-counts, kind="stable")
        style = dict(color=colour(i), label=_label(entry))
        if len(counts) > MANY_CLASSES:
            axes.scatter(counts, mean, s=6, alpha=0.35, color=colour(i), linewidths=0,
                         rasterized=len(counts) > 2000)
            x, y = _binned_mean(counts, mean)
            axes.plot(x, y, linewidth=2, **style)
        else:
            std = per_class.std(axis=0, ddof=1) if len(results) > 1 else None
            axes.errorbar(counts[order], mean[order], yerr=None if std is None else std[order], marker="o",
                          markersize=4, linewidth=1.2, capsize=2, **style)
        named.update(zip(tested, counts.tolist()))
    config = entries[0].runs[0].config
    _group_bounds(axes, config, min(named.values()), max(named.values()))
    count_axis(axes)
    axes.set_ylim(-3, 103)
    axes.set_ylabel("test accuracy of the class (%)")
    class_axis(axes, named)
    axes.grid(alpha=0.25)
    legend_above(figure, *axes.get_legend_handles_labels())
    return svg(figure, "per-class")


def learning_curves(entries: Sequence[Entry]) -> str | None:
    """Test top-1 and the many/medium/few groups per evaluated epoch, with lr, rho and the DRW switch."""
    from matplotlib.figure import Figure

    curves = [(i, entry, runs) for i, entry in enumerate(entries)
              if len(runs := [run for run in entry.runs if len(run.evaluated) >= 2]) > 0]
    if not curves:
        return None
    # Top-1 and many/medium/few; the tail third stands in for an empty few group (e.g. CIFAR-10 at ratio 10).
    groups = [g for g in (*SHOT_GROUPS, "tail") if any(_has_group(runs, g) for _, _, runs in curves)]
    panels = ["top1", *(g for g in groups if g != "tail" or "few" not in groups)]
    rows = (len(panels) + 1) // 2
    figure = Figure(figsize=(10, 2.9 * rows + 2.2), layout="constrained")
    grid = figure.add_gridspec(rows + 1, 2, height_ratios=[1] * rows + [0.75])
    axes = {name: figure.add_subplot(grid[k // 2, k % 2]) for k, name in enumerate(panels)}
    schedule_axes = figure.add_subplot(grid[rows, :])
    for i, entry, runs in curves:
        for name, ax in axes.items():
            epochs, mean, std = _mean_curve(runs, name)
            if not len(epochs):
                continue
            ax.plot(epochs, mean, color=colour(i), marker="o" if len(epochs) <= 40 else None, markersize=3,
                    linewidth=1.4, label=_label(entry))
            if std is not None:
                ax.fill_between(epochs, mean - std, mean + std, color=colour(i), alpha=0.15, linewidth=0)
    for name, ax in axes.items():
        ax.set_title("test top-1" if name == "top1" else f"{name} classes", loc="left", fontsize=10,
                     fontweight="bold")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        lowest = min((min(line.get_ydata()) for line in ax.get_lines()), default=100)
        ax.set_ylim(min(lowest - 2, 90), 101)   # at least 10 points tall: one test image is not a cliff
        ax.grid(alpha=0.25)
    _schedules(schedule_axes, [(i, entry.runs[0].config) for i, entry, _ in curves])
    drw_handles, drw_labels = mark_drw([*axes.values(), schedule_axes],
                                       [entry.runs[0].config for _, entry, _ in curves])
    last = max(entry.runs[0].config.train.epochs for _, entry, _ in curves)
    for ax in [*axes.values(), schedule_axes]:
        ax.set_xlim(0, last + 1)   # every panel on the schedule's epochs, so the DRW line lines up
    handles, labels = axes["top1"].get_legend_handles_labels()
    legend_above(figure, handles + drw_handles, labels + drw_labels)
    return svg(figure, "learning-curves")


def confusion_matrices(entries: Sequence[Entry], class_names: Sequence[str] | None) -> str | None:
    """The row-normalised confusion matrix of each entry's final epoch (summed over seeds), classes by size."""
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    matrices = []
    for entry in entries:
        finals = [np.array(run.final_test["confusion"], dtype=float) for run in entry.reported
                  if run.final_test is not None and "confusion" in run.final_test]
        if finals:
            matrices.append((entry, sum(finals), np.array(entry.reported[0].counts)))
    if not matrices:
        return None
    columns = min(len(matrices), 3)
    rows = -(-len(matrices) // columns)
    figure = Figure(figsize=(4.2 * columns + 1.2, 4.0 * rows + 0.2), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    norm = Normalize(0, 1)
    image = None
    for ax, (entry, matrix, counts) in zip(grid.flat, matrices):
        order = np.argsort(-counts, kind="stable")
        rates = _row_normalised(matrix[np.ix_(order, order)])
        blocks = len(order) > CONFUSION_BLOCKS
        if blocks:
            rates = _blocks(rates, CONFUSION_BLOCKS)
        image = ax.imshow(rates, cmap="Blues", norm=norm, interpolation="nearest")
        ax.set_title(plain(entry.label), fontsize=10)
        if not blocks and len(order) <= 20:
            names = [str(c) if class_names is None else class_names[c] for c in order]
            ax.set_xticks(range(len(order)), names, fontsize=8, rotation=90 if max(map(len, names)) > 3 else 0)
            ax.set_yticks(range(len(order)), [f"{n} ({counts[c]})" for n, c in zip(names, order)], fontsize=8)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_xlabel("predicted class" + (" (blocks of classes)" if blocks else ""))
        if ax in grid[:, 0]:
            ax.set_ylabel("true class (training images)")
        if len(order) <= CONFUSION_NUMBERS:
            for r in range(len(order)):
                for c in range(len(order)):
                    if rates[r, c] >= 0.005:
                        ax.text(c, r, f"{100 * rates[r, c]:.0f}", ha="center", va="center", fontsize=7,
                                color="white" if rates[r, c] > 0.6 else "0.15")
    for ax in list(grid.flat)[len(matrices):]:
        ax.set_visible(False)
    figure.colorbar(image, ax=grid, shrink=0.8, label="fraction of the true class's test images")
    return svg(figure, "confusion")


def _label(entry: Entry) -> str:
    seeds = [run.config.train.seed for run in entry.reported]
    return plain(entry.label + (f" ({len(seeds)} seeds)" if len(seeds) > 1 else ""))


def _binned_mean(counts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `values` in SIZE_BINS bins of log class size, at each bin's geometric centre."""
    edges = np.geomspace(counts.min(), counts.max() + 1, SIZE_BINS + 1)
    which = np.clip(np.digitize(counts, edges) - 1, 0, SIZE_BINS - 1)
    kept = [b for b in range(SIZE_BINS) if np.any(which == b)]
    return (np.array([np.sqrt(edges[b] * edges[b + 1]) for b in kept]),
            np.array([values[which == b].mean() for b in kept]))


def _group_bounds(axes, config: Config, low: int, high: int) -> None:
    """Dotted lines where few meets medium and medium meets many, each side named, within the data's range."""
    few, many = config.eval.few_threshold, config.eval.many_threshold
    for bound, left, right in ((few - 0.5, "few", "medium"), (many + 0.5, "medium", "many")):
        if low < bound < high:
            axes.axvline(bound, color="0.6", linewidth=0.8, linestyle=":")
            for text, side, offset in ((left, "right", -3), (right, "left", 3)):
                axes.annotate(text, (bound, 0), xycoords=("data", "axes fraction"), xytext=(offset, 3),
                              textcoords="offset points", ha=side, va="bottom", fontsize=8, color="0.4")


def _has_group(runs: Sequence[RunRecord], group: str) -> bool:
    return any(record["test"]["group_accuracy"].get(group) is not None for run in runs for record in run.evaluated)


def _mean_curve(runs: Sequence[RunRecord], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Epochs evaluated by every run, the mean of `metric` there, and its sample std over runs (None for one)."""
    tables = [{r["epoch"]: _metric(r["test"], metric) for r in run.evaluated} for run in runs]
    epochs = sorted(e for e in set.intersection(*(set(t) for t in tables)) if all(t[e] is not None for t in tables))
    values = np.array([[t[e] for e in epochs] for t in tables], dtype=float).reshape(len(tables), len(epochs))
    std = values.std(axis=0, ddof=1) if len(runs) > 1 else None
    return np.array(epochs), values.mean(axis=0), std


def _metric(test: dict, metric: str) -> float | None:
    return test["top1"] if metric == "top1" else test["group_accuracy"].get(metric)


def _schedules(axes, configs: Sequence[tuple[int, Config]]) -> None:
    """lr (solid, left, log scale while positive) and rho (dashed, right) of every epoch: a schedule that
    several entries share is drawn once in grey, one of a single entry in its colour."""
    lrs: dict[tuple, list[int]] = {}
    rhos: dict[tuple, list[int]] = {}
    for i, config in configs:
        lr, rho = build_schedules(config)
        epochs = range(1, config.train.epochs + 1)
        lrs.setdefault(tuple((e, lr(e)) for e in epochs), []).append(i)
        if rho is not None:
            rhos.setdefault(tuple((e, rho(e)) for e in epochs), []).append(i)
    for curve, owners in lrs.items():
        axes.step(*zip(*curve), where="mid", linewidth=1.3, color=colour(owners[0]) if len(owners) == 1 else "0.25")
    highest = max(value for curve in lrs for _, value in curve)
    if all(value > 0 for curve in lrs for _, value in curve):
        axes.set_yscale("log")
        axes.set_ylim(top=highest * 4)
    else:
        axes.set_ylim(0, highest * 1.2)
    axes.set_ylabel("lr (solid)")
    axes.set_xlabel("epoch")
    if rhos:
        rho_axes = axes.twinx()
        for curve, owners in rhos.items():
            rho_axes.step(*zip(*curve), where="mid", linewidth=1.3, linestyle="--",
                          color=colour(owners[0]) if len(owners) == 1 else "0.25")
        rho_axes.set_ylim(0, 1.3 * max(value for curve in rhos for _, value in curve))
        rho_axes.set_ylabel("SAM rho (dashed)")


def _row_normalised(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def _blocks(rates: np.ndarray, blocks: int) -> np.ndarray:
    """Row-normalised `rates` in blocks x blocks groups of consecutive classes: each block row is the mean of
    its classes' rows, each block column the sum of its classes' columns, so block rows still sum to 1."""
    edges = np.linspace(0, len(rates), blocks + 1).astype(int)
    rows = np.add.reduceat(rates, edges[:-1], axis=0) / np.diff(edges)[:, None]
    return np.add.reduceat(rows, edges[:-1], axis=1)
