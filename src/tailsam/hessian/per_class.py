"""Per-class Hessian spectra: the paper's diagnostic of saddle points in tail classes.

For class c the Hessian is that of the mean loss over class c's training
images only (model in eval mode). Over all classes, with n_c images each,
sum_c (n_c / N) H_c is the Hessian of the mean loss over all N images, for a
loss that is a plain mean of per-image losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from tailsam.errors import ConfigError
from tailsam.hessian.density import SpectralDensity, stochastic_lanczos_quadrature
from tailsam.hessian.hvp import LossFn, LossHessian

# Trained networks have a huge bulk of eigenvalues at 0 (to ~1e-6 lambda_max), and
# Lanczos places its bulk nodes on either side of 0 by roundoff, so "mass below
# exactly 0" is noise: on a small BatchNorm CNN it read 0.58 where the exact
# fraction was 0.47, and both are mostly the null space. Counting only
# eigenvalues below -1e-3 max|lambda| measured 0.023 against an exact 0.021.
NEGATIVE_TOL = 1e-3

# Turns the stored images of one class into model inputs (e.g. uint8 -> normalised float).
Transform = Callable[[torch.Tensor], torch.Tensor]


def class_indices(
    targets: torch.Tensor, class_id: int, *, max_images: int | None = None, seed: int = 0
) -> torch.Tensor:
    """Positions of class `class_id` in `targets`, ascending; at most `max_images` of them.

    The subset is drawn without replacement by a generator seeded with
    (seed, class_id), so every class gets its own reproducible draw.
    """
    positions = torch.nonzero(targets.cpu() == class_id).flatten()
    if len(positions) == 0:
        raise ConfigError(f"class {class_id} has no images in the given labels; pick a class that occurs")
    if max_images is not None:
        if max_images < 1:
            raise ConfigError(f"max_images must be at least 1 (or None for all), got {max_images}")
        if max_images < len(positions):
            rng = np.random.default_rng([seed, class_id])
            chosen = np.sort(rng.choice(len(positions), size=max_images, replace=False))
            positions = positions[torch.from_numpy(chosen)]
    return positions


def class_hessian(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    class_id: int,
    *,
    max_images: int | None = None,
    seed: int = 0,
    chunk_size: int = 256,
    trainable_only: bool = True,
    method: str = "auto",
    transform: Transform | None = None,
) -> LossHessian:
    """The Hessian operator of `loss_fn`'s mean over class `class_id`'s images (see `class_indices`).

    `transform`, if given, maps the selected images to model inputs, so that
    `inputs` can stay in their stored form (uint8) and only one class at a time
    is converted.
    """
    positions = class_indices(targets, class_id, max_images=max_images, seed=seed)
    return _subset_hessian(
        model, loss_fn, inputs, targets, positions, chunk_size, trainable_only, method, transform
    )


@dataclass(frozen=True)
class ClassSpectrum:
    """One class's loss, accuracy and Hessian spectrum summary.

    `eigenvalue_ratio` is lambda_min / lambda_max, the paper's headline
    diagnostic: near 0 at a minimum, clearly negative at a saddle point (nan if
    lambda_max is 0). `negative_mass` is the fraction of the spectral density
    below -negative_tol * max(|lambda_max|, |lambda_min|). `trace` is the SLQ
    estimate. `indices` are the positions of the images used in the given inputs.
    """

    class_id: int
    n_images: int
    n_available: int
    indices: tuple[int, ...]
    loss: float
    accuracy: float
    lambda_max: float
    lambda_min: float
    eigenvalue_ratio: float
    negative_mass: float
    negative_tol: float
    trace: float
    dim: int
    density: SpectralDensity

    def as_dict(self) -> dict:
        """The summary as plain numbers and lists for JSON (the density curve: `density.as_dict()`)."""
        return {
            "class_id": self.class_id,
            "n_images": self.n_images,
            "n_available": self.n_available,
            "indices": list(self.indices),
            "loss": self.loss,
            "accuracy": self.accuracy,
            "lambda_max": self.lambda_max,
            "lambda_min": self.lambda_min,
            "eigenvalue_ratio": self.eigenvalue_ratio,
            "negative_mass": self.negative_mass,
            "negative_tol": self.negative_tol,
            "trace": self.trace,
            "dim": self.dim,
            "lanczos_steps": [run.steps for run in self.density.runs],
        }


def class_spectrum(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    class_id: int,
    *,
    steps: int = 100,
    runs: int = 1,
    seed: int = 0,
    max_images: int | None = None,
    negative_tol: float = NEGATIVE_TOL,
    chunk_size: int = 256,
    trainable_only: bool = True,
    method: str = "auto",
    distribution: str = "rademacher",
    basis_device: torch.device | str | None = None,
    transform: Transform | None = None,
) -> ClassSpectrum:
    """Loss, accuracy and Hessian spectrum of class `class_id` from `runs` Lanczos runs of `steps` steps.

    `seed` seeds both the image subset (with `max_images`) and the Lanczos
    starts (seed, seed + 1, ...); the other arguments are those of
    `class_hessian` and `stochastic_lanczos_quadrature`.
    """
    if negative_tol < 0:
        raise ConfigError(f"negative_tol must be >= 0, got {negative_tol}")
    available = int((targets == class_id).sum())
    positions = class_indices(targets, class_id, max_images=max_images, seed=seed)
    operator = _subset_hessian(
        model, loss_fn, inputs, targets, positions, chunk_size, trainable_only, method, transform
    )
    loss, accuracy = operator.loss_and_accuracy()
    density = stochastic_lanczos_quadrature(
        operator, steps, runs, seed=seed, distribution=distribution, basis_device=basis_device
    )
    lambda_max, lambda_min = density.lambda_max, density.lambda_min
    scale = max(abs(lambda_max), abs(lambda_min))
    return ClassSpectrum(
        class_id=class_id,
        n_images=len(positions),
        n_available=available,
        indices=tuple(positions.tolist()),
        loss=loss,
        accuracy=accuracy,
        lambda_max=lambda_max,
        lambda_min=lambda_min,
        eigenvalue_ratio=lambda_min / lambda_max if lambda_max != 0 else float("nan"),
        negative_mass=density.mass_below(-negative_tol * scale),
        negative_tol=negative_tol,
        trace=density.trace(),
        dim=operator.dim,
        density=density,
    )


def _subset_hessian(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    positions: torch.Tensor,
    chunk_size: int,
    trainable_only: bool,
    method: str,
    transform: Transform | None,
) -> LossHessian:
    # One class's images are few enough to move to the model's device once, not per product.
    device = next(model.parameters()).device
    selected = inputs[positions.to(inputs.device)].to(device)
    return LossHessian(
        model,
        loss_fn,
        selected if transform is None else transform(selected),
        targets[positions.to(targets.device)].to(device),
        chunk_size=chunk_size,
        trainable_only=trainable_only,
        method=method,
    )
