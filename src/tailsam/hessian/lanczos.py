"""Lanczos tridiagonalisation with full reorthogonalisation.

m steps from a unit start vector v build an orthonormal basis V of the Krylov
space span{v, Hv, ..., H^(m-1) v} and the tridiagonal T = V^T H V. The
eigenvalues theta_k of T (Ritz values) approximate H's extreme eigenvalues
from the inside, and with tau_k the squared first components of T's
eigenvectors, sum_k tau_k f(theta_k) is the m-point Gauss quadrature of
v^T f(H) v, exact for polynomials f of degree up to 2m - 1. One run therefore
gives lambda_max, lambda_min, the top-k eigenvalues and one sample of the
spectral density (see `density.py`).

Every new basis vector is orthogonalised twice against all earlier ones
(classical Gram-Schmidt twice), so no spurious copies of converged
eigenvalues appear, at the price of storing the whole basis: steps x dim
numbers, on the operator's device unless `basis_device` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tailsam.errors import ConfigError
from tailsam.hessian.operator import SymmetricOperator, draw_probes


@dataclass(frozen=True)
class LanczosResult:
    """The tridiagonal matrix of one Lanczos run and its eigen-decomposition (float64, CPU).

    Attributes:
        alphas: diagonal of T, length `steps`.
        betas: off-diagonal of T, length `steps - 1`.
        ritz_values: eigenvalues of T, ascending.
        ritz_weights: squared first components of T's eigenvectors; they sum to 1.
        dim: dimension of the operator.
        breakdown: True when the run stopped early because the Krylov space
            became invariant (beta ~ 0): the Ritz values are then exact
            eigenvalues and the quadrature is exact for the start vector.
    """

    alphas: torch.Tensor
    betas: torch.Tensor
    ritz_values: torch.Tensor
    ritz_weights: torch.Tensor
    dim: int
    breakdown: bool

    @property
    def steps(self) -> int:
        return len(self.alphas)

    @property
    def lambda_max(self) -> float:
        """Largest Ritz value: a lower bound on H's largest eigenvalue, tight after a few dozen steps."""
        return float(self.ritz_values[-1])

    @property
    def lambda_min(self) -> float:
        """Smallest Ritz value: an upper bound on H's smallest eigenvalue."""
        return float(self.ritz_values[0])

    def top_k(self, k: int) -> torch.Tensor:
        """The k largest Ritz values, largest first (fewer if the run took fewer steps)."""
        return self.ritz_values.flip(0)[:k]

    def quadratic_form(self) -> float:
        """v^T H v for the unit start vector v, as sum_k tau_k theta_k (equal to alphas[0])."""
        return float((self.ritz_weights * self.ritz_values).sum())

    def trace_estimate(self) -> float:
        """dim * v^T H v: an unbiased estimate of trace(H) (see below).

        The start vector is v = z / ||z|| with E[z z^T] = I. For Rademacher z,
        ||z||^2 = dim exactly, so dim * v^T H v = z^T H z, Hutchinson's
        estimator. For Gaussian z, v is uniform on the sphere, E[v v^T] = I / dim,
        so E[dim * v^T H v] = trace(H) again. The quadrature is exact for this
        linear f, so more Lanczos steps do not improve the estimate; more runs do.
        """
        return self.dim * self.quadratic_form()


def lanczos(
    operator: SymmetricOperator,
    steps: int,
    *,
    seed: int = 0,
    distribution: str = "rademacher",
    basis_device: torch.device | str | None = None,
    breakdown_tol: float | None = None,
) -> LanczosResult:
    """Run `steps` Lanczos steps on `operator` from a seeded random unit start vector.

    Args:
        operator: the symmetric operator (e.g. a `LossHessian`).
        steps: number of steps; capped at `operator.dim`, where T is all of H.
        seed: seeds the start vector, drawn on the CPU so it is the same on every device.
        distribution: "rademacher" or "gaussian" entries before normalising.
        basis_device: where to keep the steps x dim basis; defaults to the
            operator's device. Use "cpu" when it does not fit in GPU memory.
        breakdown_tol: stop when beta <= breakdown_tol * ||T|| (running
            estimate); defaults to 100 * machine epsilon of the operator's dtype,
            i.e. roundoff level, so a genuinely small beta (a narrow bulk of the
            spectrum) does not end the run early.

    Returns:
        A `LanczosResult` with T, its Ritz values and quadrature weights.
    """
    if steps < 1:
        raise ConfigError(f"Lanczos needs at least 1 step, got {steps}")
    dim, device, dtype = operator.dim, operator.device, operator.dtype
    if breakdown_tol is None:
        breakdown_tol = 100 * torch.finfo(dtype).eps
    steps = min(steps, dim)
    basis_device = torch.device(basis_device) if basis_device is not None else device

    start = draw_probes(dim, 1, torch.Generator().manual_seed(seed), distribution)[:, 0]
    vector = (start / start.norm()).to(device=device, dtype=dtype)
    basis = torch.empty(steps, dim, device=basis_device, dtype=dtype)
    alphas: list[float] = []
    betas: list[float] = []
    previous = torch.zeros_like(vector)
    beta = 0.0
    norm_bound = 0.0
    breakdown = False
    for j in range(steps):
        basis[j] = vector.to(basis_device)
        residual = operator(vector)
        alpha = float(torch.dot(residual, vector))
        residual = residual - alpha * vector - beta * previous
        alphas.append(alpha)
        if j == steps - 1:
            break
        residual = _orthogonalise(residual, basis[: j + 1])
        new_beta = float(residual.norm())
        # Gershgorin bound on ||T|| so far: the scale against which beta counts as zero.
        norm_bound = max(norm_bound, abs(alpha) + beta + new_beta)
        if new_beta <= breakdown_tol * norm_bound:
            breakdown = True
            break
        previous, vector, beta = vector, residual / new_beta, new_beta
        betas.append(beta)

    alpha_t = torch.tensor(alphas, dtype=torch.float64)
    beta_t = torch.tensor(betas, dtype=torch.float64)
    tridiagonal = torch.diag(alpha_t) + torch.diag(beta_t, 1) + torch.diag(beta_t, -1)
    ritz_values, eigenvectors = torch.linalg.eigh(tridiagonal)
    return LanczosResult(
        alphas=alpha_t,
        betas=beta_t,
        ritz_values=ritz_values,
        ritz_weights=eigenvectors[0] ** 2,
        dim=dim,
        breakdown=breakdown,
    )


def _orthogonalise(vector: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Remove the components of `vector` along the rows of `basis`, twice (CGS2).

    One pass of classical Gram-Schmidt loses orthogonality when the vector is
    nearly in the span; a second pass restores it to working precision.
    """
    moved = vector.to(basis.device)
    for _ in range(2):
        moved = moved - (basis @ moved) @ basis
    return moved.to(vector.device)
