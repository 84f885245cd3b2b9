"""What the spectral tools need from a symmetric linear operator, and how to probe one.

Lanczos, stochastic Lanczos quadrature and the trace estimators only ever ask
for products `H @ v`. Anything with `dim`, `device`, `dtype` and a call that maps
a vector of length `dim` to `H @ v` works: a `LossHessian`, a `DenseOperator`,
or a user's own matrix-free operator.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from tailsam.errors import ConfigError

PROBE_DISTRIBUTIONS = ("rademacher", "gaussian")


@runtime_checkable
class SymmetricOperator(Protocol):
    """A symmetric matrix known only through matrix-vector products."""

    dim: int
    device: torch.device
    dtype: torch.dtype

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        """`H @ vector` for a 1-D tensor of length `dim` on `device` with `dtype`."""
        ...


class DenseOperator:
    """An explicit symmetric matrix as a `SymmetricOperator` (checks and small problems)."""

    def __init__(self, matrix: torch.Tensor):
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ConfigError(f"DenseOperator needs a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.dim = matrix.shape[0]
        self.device = matrix.device
        self.dtype = matrix.dtype

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        return self.matrix @ vector


def check_distribution(distribution: str) -> None:
    """Raise a ConfigError unless `distribution` names a probe distribution."""
    if distribution not in PROBE_DISTRIBUTIONS:
        raise ConfigError(
            f"unknown probe distribution {distribution!r}; choose one of: {', '.join(PROBE_DISTRIBUTIONS)}"
        )


def draw_probes(
    dim: int, count: int, generator: torch.Generator, distribution: str = "rademacher"
) -> torch.Tensor:
    """`count` random probe vectors with E[z z^T] = I, as the columns of a float64 CPU matrix.

    Drawn on the CPU in float64 so that a seed gives the same probes on every
    device and for every model dtype; callers move them where they are needed.
    Rademacher entries are +-1; Gaussian entries are standard normal.
    """
    check_distribution(distribution)
    if distribution == "rademacher":
        signs = torch.randint(0, 2, (dim, count), generator=generator, dtype=torch.int64)
        return (2 * signs - 1).to(torch.float64)
    return torch.randn(dim, count, generator=generator, dtype=torch.float64)
