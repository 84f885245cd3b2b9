"""The report's per-class Hessian figures, as inline SVG, from what the runs stored.

A finished model's spectra come from RUN/hessian/results.json (`tailsam
hessian`); spectra tracked while training, from the "hessian" records of
metrics.jsonl (`hessian.every`). Nothing is recomputed: the densities are
redrawn from the stored quadrature nodes and weights. Each function returns
None when no run holds its data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tailsam.hessian import smooth_quadrature
from tailsam.report.drawing import LINE_STYLES, MARKERS, colour, legend_above, mark_drw, plain, svg
from tailsam.report.plots import DensityCurve, draw_densities, draw_ratio_vs_count, finish_ratio_axes
from tailsam.report.sources import Entry, RunRecord


def analysed(entries: Sequence[Entry]) -> list[tuple[int, str, RunRecord]]:
    """(entry index, label, run) of every run with a hessian/results.json."""
    return [(i, entry.run_label(run), run) for i, entry in enumerate(entries) for run in entry.runs
            if run.spectra is not None and run.spectra.get("classes")]


def ratio_vs_count(entries: Sequence[Entry]) -> str | None:
    """lambda_min / lambda_max of each analysed class against its training images, one series per run."""
    from matplotlib.figure import Figure

    runs = analysed(entries)
    if not runs:
        return None
    figure = Figure(figsize=(9, 4.6), layout="constrained")
    axes = figure.subplots()
    named: dict[int, int] = {}
    seen: dict[int, int] = {}
    for i, label, run in runs:
        k = seen[i] = seen.get(i, -1) + 1    # the entry's k-th run: its own marker and line style
        points = [(c["train_count"], c["eigenvalue_ratio"], c["class_id"]) for c in run.spectra["classes"]
                  if c["eigenvalue_ratio"] is not None]
        draw_ratio_vs_count(axes, points, label=plain(label), color=colour(i), marker=MARKERS[k % len(MARKERS)],
                            linestyle=LINE_STYLES[k % len(LINE_STYLES)], markersize=5)
        named.update({class_id: count for count, _, class_id in points})
    finish_ratio_axes(axes, named)
    axes.annotate("below 0: negative curvature (a saddle)", (0.01, 0.02), xycoords="axes fraction", fontsize=8,
                  color="0.4")
    axes.grid(alpha=0.25)
    legend_above(figure, *axes.get_legend_handles_labels())
    return svg(figure, "ratio")


@dataclass(frozen=True)
class RatioSummary:
    """One analysed run in numbers: the mean lambda_min / lambda_max over a class group, and the lowest class."""

    run: str
    group_mean: float | None
    group_classes: list[int]
    lowest: float
    lowest_class: int
    lowest_count: int
    settings: str          # how its results.json was computed


def ratio_summary(entries: Sequence[Entry], group: str) -> list[RatioSummary]:
    """Per analysed run: the mean lambda_min / lambda_max over the `group` classes, and the lowest class."""
    summaries = []
    for _, label, run in analysed(entries):
        classes = [c for c in run.spectra["classes"] if c["eigenvalue_ratio"] is not None]
        if not classes:
            continue
        lowest = min(classes, key=lambda c: c["eigenvalue_ratio"])
        members = set((run.groups or {}).get(group, []))
        in_group = [c for c in classes if c["class_id"] in members]
        summaries.append(RatioSummary(
            label, float(np.mean([c["eigenvalue_ratio"] for c in in_group])) if in_group else None,
            [c["class_id"] for c in in_group], lowest["eigenvalue_ratio"], lowest["class_id"], lowest["train_count"],
            _settings(run.spectra)))
    return summaries


def densities(entries: Sequence[Entry]) -> str | None:
    """Each analysed run's per-class densities: against the eigenvalue, and against eigenvalue / lambda_max."""
    from matplotlib.figure import Figure

    # A results.json keeps each class's quadrature nodes and weights (`spectrum_record`); without them, no curve.
    runs = [(i, label, run) for i, label, run in analysed(entries)
            if all("density" in record for record in run.spectra["classes"])]
    if not runs:
        return None
    figure = Figure(figsize=(11, 3.3 * len(runs) + 0.3), layout="constrained")
    grid = figure.subplots(len(runs), 2, squeeze=False)
    for (raw_axes, scaled_axes), (_, label, run) in zip(grid, runs):
        draw_densities(raw_axes, scaled_axes, [_curve(record) for record in run.spectra["classes"]],
                       legend=raw_axes is grid[0, 0])
        raw_axes.set_title(plain(label), loc="left", fontsize=10, fontweight="bold")
    return svg(figure, "densities")


def tracked(entries: Sequence[Entry]) -> str | None:
    """lambda_min / lambda_max of the classes tracked during training, per epoch: one panel per class."""
    from matplotlib.figure import Figure

    series = []   # (entry index, k-th run of the entry, label, {class id: (count, [(epoch, ratio)])})
    for i, entry in enumerate(entries):
        for k, run in enumerate(entry.runs):
            classes: dict[int, tuple[int, list]] = {}
            for record in run.metrics:
                for c in record.get("hessian", []):
                    if c.get("eigenvalue_ratio") is not None:
                        classes.setdefault(c["class_id"], (c["train_count"], []))[1].append(
                            (record["epoch"], c["eigenvalue_ratio"]))
            if classes:
                series.append((i, k, entry.run_label(run), classes))
    if not series:
        return None
    counts = {class_id: count for *_, classes in series for class_id, (count, _) in classes.items()}
    shown = sorted(counts, key=lambda c: (-counts[c], c))
    columns = min(len(shown), 3)
    rows = -(-len(shown) // columns)
    figure = Figure(figsize=(3.6 * columns + 0.6, 3.0 * rows + 0.6), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for ax, class_id in zip(grid.flat, shown):
        for i, k, label, classes in series:
            if class_id in classes:
                epochs, ratios = zip(*classes[class_id][1])
                ax.plot(epochs, ratios, color=colour(i), linestyle=LINE_STYLES[k % len(LINE_STYLES)],
                        marker=MARKERS[k % len(MARKERS)], markersize=3, linewidth=1.2, label=plain(label))
        ax.axhline(0.0, color="0.6", linewidth=0.8, linestyle=":")
        ax.set_title(f"class {class_id} ({counts[class_id]} training images)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.25)
    for ax in grid[:, 0]:
        ax.set_ylabel("lambda_min / lambda_max")
    for ax in list(grid.flat)[len(shown):]:
        ax.set_visible(False)
    handles, labels = grid[0, 0].get_legend_handles_labels()
    drw_handles, drw_labels = mark_drw(list(grid.flat)[:len(shown)], [run.config for e in entries for run in e.runs])
    legend_above(figure, handles + drw_handles, labels + drw_labels)
    return svg(figure, "tracked")


def _curve(record: dict) -> DensityCurve:
    """A results.json class record's density, smoothed as `tailsam hessian` drew it."""
    density = record["density"]
    grid, values = smooth_quadrature(density["nodes"], density["weights"], density["sigma"])
    return DensityCurve(record["class_id"], record["train_count"], grid.numpy(), values.numpy(),
                        record["lambda_max"] or 0.0)


def _settings(spectra: dict) -> str:
    """How a results.json was computed, in words."""
    images = "every training image" if spectra.get("max_images") is None else \
        f"at most {spectra['max_images']} images"
    steps = spectra.get("steps", spectra.get("iters"))   # "iters" in results.json files of before the rename
    return (f"epoch {spectra.get('epoch')}, {spectra.get('split', 'train')} split, "
            f"{spectra.get('loss_function', spectra.get('loss'))}, {steps} Lanczos steps, {images} per class")
