"""Plots of per-class spectra: the smoothed densities, and lambda_min / lambda_max against class size.

Figures are drawn with matplotlib's object API and saved as PNG through its
Agg renderer, so nothing here touches pyplot's global state or needs a display.
Classes are coloured by their training count on a log scale, so head and tail
classes tell apart at a glance. The `draw_*` pieces draw on given axes: the
PNGs here and the figures of the HTML report (tailsam.report.figures) share them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from tailsam.hessian.per_class import ClassSpectrum

# A log-scale density axis shows this many decades below the highest peak: enough
# for the thin negative tail of a saddle, not so many that roundoff-level bulk shows.
DENSITY_DECADES = 6
COLORMAP = "viridis"
MARKERS = ("o", "s", "^", "D", "v", "P")
# Up to this many distinct class sizes, a class-size axis names its classes along the top.
NAMED_CLASSES = 20


@dataclass(frozen=True)
class DensityCurve:
    """One class's smoothed spectral density, ready to draw."""

    class_id: int
    count: int                 # training images of the class
    grid: np.ndarray
    density: np.ndarray
    lambda_max: float


def spectrum_curves(spectra: Sequence[ClassSpectrum], counts: Sequence[int]) -> list[DensityCurve]:
    """Each class's smoothed spectral density, with its training-image count and lambda_max, for drawing."""
    curves = []
    for spectrum in spectra:
        grid, density = (t.numpy() for t in spectrum.density.smoothed())
        curves.append(DensityCurve(spectrum.class_id, counts[spectrum.class_id], grid, density, spectrum.lambda_max))
    return curves


def ratio_points(spectra: Sequence[ClassSpectrum], counts: Sequence[int]) -> list[tuple[int, float, int]]:
    """(training count, lambda_min / lambda_max, class id) of each class with a finite ratio."""
    return [(counts[s.class_id], s.eigenvalue_ratio, s.class_id) for s in spectra if np.isfinite(s.eigenvalue_ratio)]


def plot_densities(
    spectra: Sequence[ClassSpectrum], counts: Sequence[int], path: str | Path, *, title: str = ""
) -> Path:
    """Each class's Gaussian-smoothed spectral density, log scale, coloured by training count.

    Left: against the eigenvalue, a triangle at each class's lambda_max. Right:
    against eigenvalue / lambda_max of the class, where a saddle shows as mass
    reaching left of 0 and the curve's left end is lambda_min / lambda_max.
    Returns the PNG's path.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    raw_axes, scaled_axes = figure.subplots(1, 2)
    draw_densities(raw_axes, scaled_axes, spectrum_curves(spectra, counts))
    figure.suptitle(title or "Per-class Hessian spectral density (stochastic Lanczos quadrature)")
    return _save(figure, path)


def draw_densities(raw_axes, scaled_axes, curves: Sequence[DensityCurve], *, legend: bool = True) -> None:
    """The densities of `curves` against the eigenvalue (`raw_axes`) and eigenvalue / lambda_max (`scaled_axes`).

    With `legend` and up to 12 classes a legend names them; a colour bar beside `scaled_axes` gives class sizes.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable

    curves = sorted(curves, key=lambda c: (-c.count, c.class_id))   # largest first: the tail is drawn on top
    norm = _count_norm([c.count for c in curves])
    cmap = colormaps[COLORMAP]
    peaks = {raw_axes: 0.0, scaled_axes: 0.0}
    for curve in curves:
        colour = cmap(norm(curve.count))
        raw_axes.plot(curve.grid, curve.density, color=colour, label=f"class {curve.class_id} ({curve.count})",
                      linewidth=1.2)
        # The density at a class's lambda_max is often decades below the bulk's peak and off the axes:
        # a triangle on the floor shows where it is, and why the eigenvalue axis reaches that far.
        raw_axes.plot([curve.lambda_max], [0.03], marker="^", markersize=6, color=colour, linestyle="none",
                      transform=raw_axes.get_xaxis_transform())
        peaks[raw_axes] = max(peaks[raw_axes], float(curve.density.max()))
        if curve.lambda_max > 0:
            # The density of t / lambda_max is lambda_max * density(t).
            scaled = curve.density * curve.lambda_max
            scaled_axes.plot(curve.grid / curve.lambda_max, scaled, color=colour, linewidth=1.2)
            peaks[scaled_axes] = max(peaks[scaled_axes], float(scaled.max()))
    for axes, peak in peaks.items():
        axes.set_yscale("log")
        if peak > 0:
            axes.set_ylim(peak * 10.0**-DENSITY_DECADES, peak * 2)
        axes.axvline(0.0, color="0.6", linewidth=0.8, linestyle=":")
        axes.set_ylabel("density (log scale)")
    raw_axes.set_xlabel("eigenvalue")
    scaled_axes.set_xlabel("eigenvalue / lambda_max of the class")
    if legend and len(curves) <= 12:
        raw_axes.legend(fontsize="small", title="class (training images)", title_fontsize="small")
    scaled_axes.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=scaled_axes,
                                label="training images of the class")


def plot_ratio_vs_count(
    runs: Mapping[str, tuple[Sequence[ClassSpectrum], Sequence[int]]], path: str | Path, *, title: str = ""
) -> Path:
    """lambda_min / lambda_max of each class against its training count (log x), one series per run.

    `runs` maps a label (e.g. "SGD", "SAM"; "" for a single run) to its spectra
    and training counts. Below 0 is a saddle; the further below, the stronger
    the negative curvature relative to the sharpest direction. Returns the PNG's path.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4.4), layout="constrained")
    axes = figure.subplots()
    named: dict[int, int] = {}
    for i, (label, (spectra, counts)) in enumerate(runs.items()):
        points = ratio_points(spectra, counts)
        draw_ratio_vs_count(axes, points, label=label or None, marker=MARKERS[i % len(MARKERS)])
        named.update({class_id: count for count, _, class_id in points})
    finish_ratio_axes(axes, named)
    if any(runs):
        axes.legend()
    axes.set_title(title or "Negative curvature by class size")
    return _save(figure, path)


def draw_ratio_vs_count(axes, points: Sequence[tuple[int, float, int]], **style) -> None:
    """One series of (training count, lambda_min / lambda_max, class id) points, by count."""
    if not points:
        return
    x, y, _ = zip(*sorted(points))
    axes.plot(x, y, linewidth=1, **style)


def finish_ratio_axes(axes, classes: Mapping[int, int]) -> None:
    """Log-scale class-size axis, the 0 line, labels; `classes` (id -> count) names them along the top."""
    count_axis(axes)
    axes.axhline(0.0, color="0.6", linewidth=0.8, linestyle=":")
    axes.set_ylabel("lambda_min / lambda_max")
    class_axis(axes, classes)


def count_axis(axes) -> None:
    """A log-scale x axis of training images per class, its ticks plain numbers (5, 10, 20, 50, ...)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("training images of the class (log scale)")


def class_axis(axes, classes: Mapping[int, int]) -> None:
    """Name the classes at their training counts along the top of a log-x axes, when there are few sizes.

    One label per size, so series of several runs never stack their labels on
    one point; classes of the same size share it ("0-4", "5,7").
    """
    by_count: dict[int, list[int]] = {}
    for class_id, count in classes.items():
        by_count.setdefault(count, []).append(class_id)
    if not by_count or len(by_count) > NAMED_CLASSES:
        return
    top = axes.secondary_xaxis("top")
    top.set_xticks(sorted(by_count), labels=[_ids(by_count[count]) for count in sorted(by_count)], fontsize=8)
    top.minorticks_off()
    top.set_xlabel("class", fontsize=8)


def _ids(ids: list[int]) -> str:
    ids = sorted(ids)
    if len(ids) > 2 and ids == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}-{ids[-1]}"
    return ",".join(map(str, ids))


def _count_norm(values: Sequence[int]):
    from matplotlib.colors import LogNorm

    low, high = min(values), max(values)
    # A single class size still needs a non-empty range for the colour bar.
    return LogNorm(vmin=low, vmax=high if high > low else low * 2)


def _save(figure, path: str | Path) -> Path:
    """Write the PNG under a temporary name and rename it, so a crash leaves no half-written plot."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    figure.savefig(partial, format="png", dpi=120)
    os.replace(partial, path)
    return path
