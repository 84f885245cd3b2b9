"""Every table and plot tailsam writes, and the one-page HTML report of runs and sweeps.

    print(format_results({"SGD": sgd_result, "SAM": sam_result}, class_names=names))
    write_spectra(analyze_checkpoint(RUN), RUN / "hessian")   # results.json + two plots
    print(spectra_table(spectra))
    write_report(["runs/sgd", "runs/sam"])                     # runs/sgd/report.html: the evidence on one page
"""

from tailsam.report.page import REPORT_FILE, Report, write_report
from tailsam.report.plots import plot_densities, plot_ratio_vs_count
from tailsam.report.spectra import spectra_table, write_spectra
from tailsam.report.tables import format_results

__all__ = ["REPORT_FILE", "Report", "format_results", "plot_densities", "plot_ratio_vs_count", "spectra_table",
           "write_report", "write_spectra"]
