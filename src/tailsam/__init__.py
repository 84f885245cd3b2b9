"""tailsam: long-tailed classification with SAM and per-class Hessian spectra."""

__version__ = "0.1.0"
