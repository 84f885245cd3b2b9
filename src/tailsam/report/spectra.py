"""A checkpoint's per-class spectra (tailsam.run.RunSpectra) as files and as a table."""

from __future__ import annotations

from pathlib import Path

from tailsam.report.plots import plot_densities, plot_ratio_vs_count
from tailsam.run.directory import write_json
from tailsam.run.spectra import RESULTS_FILE, RunSpectra

DENSITY_PLOT = "densities.png"
RATIO_PLOT = "ratio_vs_count.png"


def write_spectra(result: RunSpectra, folder: str | Path) -> dict[str, Path]:
    """Write results.json and the two plots into `folder`; returns their paths by name."""
    folder = Path(folder)
    label = f"{result.recipe or result.checkpoint}, epoch {result.epoch}, {result.settings['split']} split"
    paths = {
        "densities": plot_densities(result.spectra, result.counts, folder / DENSITY_PLOT,
                                    title=f"Per-class Hessian spectral density ({label})"),
        "ratio": plot_ratio_vs_count({"": (result.spectra, result.counts)}, folder / RATIO_PLOT,
                                     title=f"lambda_min / lambda_max by class size ({label})"),
    }
    results = {**result.to_dict(), "plots": {name: path.name for name, path in paths.items()}}
    paths["results"] = folder / RESULTS_FILE
    write_json(paths["results"], results)
    return paths


def spectra_table(result: RunSpectra) -> str:
    """Which loss, then one line per class: size, loss, accuracy and the spectrum's summary."""
    lines = [f"loss: {result.settings['loss_function']} ({result.settings['split']} split)",
             f"{'class':>5s} {'train':>6s} {'images':>6s} {'loss':>8s} {'acc%':>6s} {'lambda_max':>11s} "
             f"{'lambda_min':>11s} {'min/max':>8s} {'neg.mass':>8s} {'trace':>10s}"]
    for s in result.spectra:
        lines.append(f"{s.class_id:5d} {result.counts[s.class_id]:6d} {s.n_images:6d} {s.loss:8.4f} "
                     f"{100 * s.accuracy:6.1f} {s.lambda_max:11.4g} {s.lambda_min:11.4g} "
                     f"{s.eigenvalue_ratio:8.4f} {s.negative_mass:8.4f} {s.trace:10.4g}")
    return "\n".join(lines)
