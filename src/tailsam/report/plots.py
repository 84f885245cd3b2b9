"""Plots of per-class spectra: the smoothed densities, and lambda_min / lambda_max against class size.

Figures are drawn with matplotlib's object API and saved as PNG through its
Agg renderer, so nothing here touches pyplot's global state or needs a display.
Classes are coloured by their training count on a log scale, so head and tail
classes tell apart at a glance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from tailsam.hessian.per_class import ClassSpectrum

# A log-scale density axis shows this many decades below the highest peak: enough
# for the thin negative tail of a saddle, not so many that roundoff-level bulk shows.
DENSITY_DECADES = 6
COLORMAP = "viridis"
MARKERS = ("o", "s", "^", "D", "v", "P")


def plot_densities(
    spectra: Sequence[ClassSpectrum], counts: Sequence[int], path: str | Path, *, title: str = ""
) -> Path:
    """Each class's Gaussian-smoothed spectral density, log scale, coloured by training count.

    Left: against the eigenvalue. Right: against eigenvalue / lambda_max of
    the class, where a saddle shows as mass reaching left of 0 and the curve's
    left end is lambda_min / lambda_max. Returns the PNG's path.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    spectra = _head_first(spectra, counts)
    norm = _count_norm([counts[s.class_id] for s in spectra])
    cmap = colormaps[COLORMAP]
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    raw_axes, scaled_axes = figure.subplots(1, 2)
    peaks = {raw_axes: 0.0, scaled_axes: 0.0}
    for spectrum in spectra:
        grid, density = (t.numpy() for t in spectrum.density.smoothed())
        colour = cmap(norm(counts[spectrum.class_id]))
        label = f"class {spectrum.class_id} ({counts[spectrum.class_id]})"
        raw_axes.plot(grid, density, color=colour, label=label, linewidth=1.2)
        peaks[raw_axes] = max(peaks[raw_axes], float(density.max()))
        if spectrum.lambda_max > 0:
            # The density of t / lambda_max is lambda_max * density(t).
            scaled = density * spectrum.lambda_max
            scaled_axes.plot(grid / spectrum.lambda_max, scaled, color=colour, linewidth=1.2)
            peaks[scaled_axes] = max(peaks[scaled_axes], float(scaled.max()))
    for axes, peak in peaks.items():
        axes.set_yscale("log")
        if peak > 0:
            axes.set_ylim(peak * 10.0**-DENSITY_DECADES, peak * 2)
        axes.axvline(0.0, color="0.6", linewidth=0.8, linestyle=":")
        axes.set_ylabel("density (log scale)")
    raw_axes.set_xlabel("eigenvalue")
    scaled_axes.set_xlabel("eigenvalue / lambda_max of the class")
    if len(spectra) <= 12:
        raw_axes.legend(fontsize="small", title="class (training images)", title_fontsize="small")
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=scaled_axes, label="training images of the class")
    figure.suptitle(title or "Per-class Hessian spectral density (stochastic Lanczos quadrature)")
    return _save(figure, path)


def plot_ratio_vs_count(
    runs: Mapping[str, tuple[Sequence[ClassSpectrum], Sequence[int]]], path: str | Path, *, title: str = ""
) -> Path:
    """lambda_min / lambda_max of each class against its training count (log x), one series per run.

    `runs` maps a label (e.g. "SGD", "SAM"; "" for a single run) to its spectra
    and training counts. Below 0 is a saddle; the further below, the stronger
    the negative curvature relative to the sharpest direction. Returns the PNG's path.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    axes = figure.subplots()
    for i, (label, (spectra, counts)) in enumerate(runs.items()):
        points = sorted(
            (counts[s.class_id], s.eigenvalue_ratio, s.class_id)
            for s in spectra
            if np.isfinite(s.eigenvalue_ratio)
        )
        if not points:
            continue
        x, y, ids = zip(*points)
        axes.plot(x, y, marker=MARKERS[i % len(MARKERS)], linewidth=1, label=label or None)
        if len(points) <= 20:
            for xi, yi, class_id in points:
                axes.annotate(str(class_id), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xscale("log")
    axes.axhline(0.0, color="0.6", linewidth=0.8, linestyle=":")
    axes.set_xlabel("training images of the class (log scale)")
    axes.set_ylabel("lambda_min / lambda_max")
    if any(runs):
        axes.legend()
    axes.set_title(title or "Negative curvature by class size (labels: class ids)")
    return _save(figure, path)


def _head_first(spectra: Sequence[ClassSpectrum], counts: Sequence[int]) -> list[ClassSpectrum]:
    """Largest classes first, so the tail classes are drawn on top."""
    return sorted(spectra, key=lambda s: (-counts[s.class_id], s.class_id))


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
