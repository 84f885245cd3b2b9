"""Per-class Hessian analysis: Hessian-vector products, Lanczos, SLQ density, trace.

Typical use, for a trained classifier and one class's training images::

    from tailsam.hessian import class_spectrum
    spectrum = class_spectrum(model, loss_fn, x_train, y_train, class_id=9, steps=100)
    spectrum.eigenvalue_ratio   # lambda_min / lambda_max: clearly negative at a saddle
    grid, density = spectrum.density.smoothed()

or several classes at once, with plots (tailsam.report draws them)::

    from tailsam.hessian import analyze
    from tailsam.report import plot_densities, plot_ratio_vs_count
    spectra = analyze(model, x_train, y_train, train_counts, classes=[0, 4, 9], steps=100)
    plot_densities(spectra, train_counts, "densities.png")
    plot_ratio_vs_count({"": (spectra, train_counts)}, "ratio.png")

For a run directory, `tailsam.run.analyze_checkpoint` rebuilds the model
and its data (and `tailsam hessian RUN` is the command for it).

The pieces compose for other operators: `LossHessian` is a matrix-free
Hessian, `lanczos` and `stochastic_lanczos_quadrature` take any
`SymmetricOperator`, and `hutchinson_trace` / `hutchpp_trace` estimate traces.
"""

from tailsam.hessian.analysis import analyze, check_classes, spectrum_record, spread_classes
from tailsam.hessian.density import SpectralDensity, smooth_quadrature, stochastic_lanczos_quadrature
from tailsam.hessian.hvp import LossHessian, affine_batchnorm
from tailsam.hessian.lanczos import LanczosResult, lanczos
from tailsam.hessian.operator import DenseOperator, SymmetricOperator, draw_probes
from tailsam.hessian.per_class import ClassSpectrum, class_hessian, class_indices, class_spectrum
from tailsam.hessian.trace import TraceEstimate, hutchinson_trace, hutchpp_trace

__all__ = [
    "ClassSpectrum",
    "DenseOperator",
    "LanczosResult",
    "LossHessian",
    "SpectralDensity",
    "SymmetricOperator",
    "TraceEstimate",
    "affine_batchnorm",
    "analyze",
    "check_classes",
    "class_hessian",
    "class_indices",
    "class_spectrum",
    "draw_probes",
    "hutchinson_trace",
    "hutchpp_trace",
    "lanczos",
    "smooth_quadrature",
    "spectrum_record",
    "spread_classes",
    "stochastic_lanczos_quadrature",
]
