"""Every table and plot tailsam writes: results side by side, per-class spectra, their plots.

    print(format_results({"SGD": sgd_result, "SAM": sam_result}, class_names=names))
    write_spectra(analyze_checkpoint(RUN), RUN / "hessian")   # results.json + two plots
    print(spectra_table(spectra))
"""

from tailsam.report.plots import plot_densities, plot_ratio_vs_count
from tailsam.report.spectra import spectra_table, write_spectra
from tailsam.report.tables import format_results

__all__ = ["format_results", "plot_densities", "plot_ratio_vs_count", "spectra_table", "write_spectra"]
