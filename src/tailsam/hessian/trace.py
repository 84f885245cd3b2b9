"""Randomised trace estimators that need only products H @ v.

Hutchinson: for probes z with E[z z^T] = I, E[z^T H z] = trace(H). With
Rademacher probes the variance of one sample is 2 (||H||_F^2 - sum_i H_ii^2);
with Gaussian probes it is 2 ||H||_F^2.

Hutch++ (Meyer, Musco, Musco, Woodruff 2021): spend a third of the budget
finding Q, an orthonormal basis of H S for random S, which captures the
large eigenvalues; take trace(Q^T H Q) exactly and apply Hutchinson only to the
deflated (I - QQ^T) H (I - QQ^T), whose Frobenius norm, and so the variance,
is much smaller when the spectrum decays, as a Hessian's does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tailsam.errors import ConfigError
from tailsam.hessian.operator import SymmetricOperator, draw_probes


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate, its standard error from the random part, and its cost in products H @ v.

    `standard_error` is the sample standard deviation of the random
    quadratic forms over sqrt(their count): nan with one sample, roundoff
    level when the estimate is exact (Hutch++ with a sketch spanning the space).
    """

    value: float
    standard_error: float
    matvecs: int


def hutchinson_trace(
    operator: SymmetricOperator, samples: int, *, seed: int = 0, distribution: str = "rademacher"
) -> TraceEstimate:
    """Hutchinson's estimate of trace(H): the mean of z^T H z over `samples` random probes."""
    if samples < 1:
        raise ConfigError(f"Hutchinson needs at least 1 sample, got {samples}")
    probes = draw_probes(operator.dim, samples, torch.Generator().manual_seed(seed), distribution)
    forms = _quadratic_forms(operator, probes.to(device=operator.device, dtype=operator.dtype))
    return TraceEstimate(float(forms.mean()), _standard_error(forms), samples)


def hutchpp_trace(
    operator: SymmetricOperator, matvecs: int, *, seed: int = 0, distribution: str = "rademacher"
) -> TraceEstimate:
    """Hutch++ estimate of trace(H) within a budget of `matvecs` products (at least 3).

    A third of the budget (rounded down) sketches H, the same number computes
    the exact trace on the sketch, and the rest are Hutchinson probes of the
    deflated remainder.
    """
    if matvecs < 3:
        raise ConfigError(f"Hutch++ needs a budget of at least 3 matvecs, got {matvecs}")
    sketch_size = matvecs // 3
    residual_samples = matvecs - 2 * sketch_size
    generator = torch.Generator().manual_seed(seed)
    sketch = draw_probes(operator.dim, sketch_size, generator, distribution)
    residual_probes = draw_probes(operator.dim, residual_samples, generator, distribution)

    def to_operator(matrix: torch.Tensor) -> torch.Tensor:
        return matrix.to(device=operator.device, dtype=operator.dtype)

    sketched = _apply_columns(operator, to_operator(sketch)).to(torch.float64)
    basis, _ = torch.linalg.qr(sketched)  # dim x min(dim, sketch_size), orthonormal
    exact_part = float(_quadratic_forms(operator, to_operator(basis)).sum())
    residual_probes = residual_probes.to(basis.device)
    deflated = residual_probes - basis @ (basis.T @ residual_probes)
    forms = _quadratic_forms(operator, to_operator(deflated))
    return TraceEstimate(exact_part + float(forms.mean()), _standard_error(forms), matvecs)


def _apply_columns(operator: SymmetricOperator, columns: torch.Tensor) -> torch.Tensor:
    return torch.stack([operator(columns[:, i]) for i in range(columns.shape[1])], dim=1)


def _quadratic_forms(operator: SymmetricOperator, columns: torch.Tensor) -> torch.Tensor:
    """z_i^T H z_i for each column z_i, in float64."""
    products = _apply_columns(operator, columns)
    return (columns.to(torch.float64) * products.to(torch.float64)).sum(dim=0)


def _standard_error(samples: torch.Tensor) -> float:
    if len(samples) < 2:
        return math.nan
    return float(samples.std() / math.sqrt(len(samples)))
