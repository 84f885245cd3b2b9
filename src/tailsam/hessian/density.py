"""Spectral density by stochastic Lanczos quadrature (SLQ).

The spectral density of a symmetric H (dim x dim, eigenvalues lambda_i) is
phi(t) = (1/dim) sum_i delta(t - lambda_i). For a random unit vector v with
E[v v^T] = I / dim, E[v^T f(H) v] = (1/dim) sum_i f(lambda_i) = integral f phi,
and one Lanczos run from v gives the quadrature v^T f(H) v ~ sum_k tau_k f(theta_k).
So the discrete measure sum_k tau_k delta(t - theta_k), averaged over a few
random starts, estimates phi; replacing each delta by a Gaussian of width
sigma gives a smooth curve to plot. The measure has total mass 1 (a
probability density; multiply by dim for an eigenvalue count density).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from tailsam.errors import ConfigError
from tailsam.hessian.lanczos import LanczosResult, lanczos
from tailsam.hessian.operator import SymmetricOperator

DEFAULT_SIGMA_FRACTION = 0.01


@dataclass(frozen=True)
class SpectralDensity:
    """The quadrature nodes and weights of several Lanczos runs on one operator.

    Everything here comes from the same runs: the extreme eigenvalues, the
    trace and the smoothed density, which can be re-smoothed with another
    sigma or grid without new Hessian-vector products.
    """

    runs: tuple[LanczosResult, ...]

    @property
    def dim(self) -> int:
        return self.runs[0].dim

    @property
    def lambda_max(self) -> float:
        """Largest Ritz value over all runs (each run's is a lower bound on the true one)."""
        return max(run.lambda_max for run in self.runs)

    @property
    def lambda_min(self) -> float:
        """Smallest Ritz value over all runs (each run's is an upper bound on the true one)."""
        return min(run.lambda_min for run in self.runs)

    def mean(self) -> float:
        """Mean eigenvalue under the estimated density: sum_k tau_k theta_k averaged over runs."""
        return sum(run.quadratic_form() for run in self.runs) / len(self.runs)

    def trace(self) -> float:
        """trace(H) estimate, dim * mean(); its standard error shrinks as 1 / sqrt(runs)."""
        return self.dim * self.mean()

    def mass_below(self, threshold: float = 0.0) -> float:
        """Fraction of the spectrum below `threshold`: weights of the nodes under it, averaged over runs."""
        return sum(float(run.ritz_weights[run.ritz_values < threshold].sum()) for run in self.runs) / len(
            self.runs
        )

    def default_sigma(self, fraction: float = DEFAULT_SIGMA_FRACTION) -> float:
        """`fraction` of the spectral width lambda_max - lambda_min.

        A single-point spectrum has width 0: then `fraction` of max |lambda|, or of 1 if that is 0 too.
        """
        width = self.lambda_max - self.lambda_min
        if width <= 0:
            width = max(abs(self.lambda_max), abs(self.lambda_min)) or 1.0
        return fraction * width

    def default_grid(self, sigma: float, num_points: int = 1000) -> torch.Tensor:
        """`num_points` evenly spaced points from lambda_min - 5 sigma to lambda_max + 5 sigma."""
        return _grid(self.lambda_min, self.lambda_max, sigma, num_points)

    def smoothed(
        self,
        sigma: float | None = None,
        grid: torch.Tensor | None = None,
        num_points: int = 1000,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian-smoothed density on a grid: (grid, density), both float64.

        Args:
            sigma: the Gaussian's standard deviation in eigenvalue units;
                defaults to `default_sigma()` (1% of the spectral width).
            grid: where to evaluate; defaults to `default_grid(sigma, num_points)`,
                wide enough that the density integrates to 1 over it.
            num_points: size of the default grid.
        """
        sigma = self.default_sigma() if sigma is None else sigma
        return smooth_quadrature([run.ritz_values for run in self.runs], [run.ritz_weights for run in self.runs],
                                 sigma, grid, num_points)

    def as_dict(self, sigma: float | None = None, num_points: int = 1000) -> dict:
        """Plain lists for JSON: per-run nodes and weights, and the smoothed curve."""
        sigma = self.default_sigma() if sigma is None else sigma
        grid, density = self.smoothed(sigma=sigma, num_points=num_points)
        return {
            "dim": self.dim,
            "nodes": [run.ritz_values.tolist() for run in self.runs],
            "weights": [run.ritz_weights.tolist() for run in self.runs],
            "sigma": sigma,
            "grid": grid.tolist(),
            "density": density.tolist(),
        }


def smooth_quadrature(
    nodes: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
    sigma: float,
    grid: torch.Tensor | None = None,
    num_points: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian-smoothed density of quadrature nodes and weights, one pair per Lanczos run: (grid, density).

    What `SpectralDensity.smoothed` draws, from the nodes and weights alone, so
    a density saved as numbers (a results.json) is redrawn without its runs.
    The runs are averaged; `grid` defaults to `num_points` points spanning
    the nodes with 5 sigma to spare on each side.
    """
    if sigma <= 0:
        raise ConfigError(f"density sigma must be positive, got {sigma}")
    nodes = [torch.as_tensor(n, dtype=torch.float64).cpu() for n in nodes]
    weights = [torch.as_tensor(w, dtype=torch.float64).cpu() for w in weights]
    if grid is None:
        grid = _grid(min(float(n.min()) for n in nodes), max(float(n.max()) for n in nodes), sigma, num_points)
    grid = grid.to(torch.float64).cpu()
    density = torch.zeros_like(grid)
    for run_nodes, run_weights in zip(nodes, weights):
        gaps = (grid[:, None] - run_nodes[None, :]) / sigma
        density += (torch.exp(-0.5 * gaps**2) * run_weights).sum(dim=1)
    density /= len(nodes) * sigma * math.sqrt(2 * math.pi)
    return grid, density


def _grid(low: float, high: float, sigma: float, num_points: int) -> torch.Tensor:
    return torch.linspace(low - 5 * sigma, high + 5 * sigma, num_points, dtype=torch.float64)


def stochastic_lanczos_quadrature(
    operator: SymmetricOperator,
    steps: int = 100,
    runs: int = 1,
    *,
    seed: int = 0,
    distribution: str = "rademacher",
    basis_device: torch.device | str | None = None,
) -> SpectralDensity:
    """`runs` Lanczos runs of `steps` steps from independent random starts (seeds seed, seed+1, ...)."""
    if runs < 1:
        raise ConfigError(f"SLQ needs at least 1 run, got {runs}")
    return SpectralDensity(
        tuple(
            lanczos(operator, steps, seed=seed + run, distribution=distribution, basis_device=basis_device)
            for run in range(runs)
        )
    )
