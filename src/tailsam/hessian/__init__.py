"""Per-class Hessian analysis: Hessian-vector products, Lanczos, SLQ density, trace.

Typical use, for a trained classifier and one class's training images::

    from tailsam.hessian import class_spectrum
    spectrum = class_spectrum(model, loss_fn, x_train, y_train, class_id=9, steps=100)
    spectrum.eigenvalue_ratio   # lambda_min / lambda_max: clearly negative at a saddle
    grid, density = spectrum.density.smoothed()

The pieces compose for other operators: `LossHessian` is a matrix-free
Hessian, `lanczos` and `stochastic_lanczos_quadrature` take any
`SymmetricOperator`, and `hutchinson_trace` / `hutchpp_trace` estimate traces.
"""

from tailsam.hessian.density import SpectralDensity, stochastic_lanczos_quadrature
from tailsam.hessian.hvp import LossHessian
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
    "class_hessian",
    "class_indices",
    "class_spectrum",
    "draw_probes",
    "hutchinson_trace",
    "hutchpp_trace",
    "lanczos",
    "stochastic_lanczos_quadrature",
]
