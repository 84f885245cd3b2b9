"""The per-class driver: Hessian spectra of several classes of one model, and their JSON records.

    spectra = analyze(model, images, labels, counts, classes=[0, 4, 9], steps=100)
    [s.eigenvalue_ratio for s in spectra]          # lambda_min / lambda_max, class by class
    records = [spectrum_record(s, counts[s.class_id]) for s in spectra]

`counts` are the training images per class: they fix the number of classes
(so an unknown class is caught before any work) and rank the classes from
head to tail (`spread_classes`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tailsam.errors import ConfigError
from tailsam.hessian.hvp import LossFn
from tailsam.hessian.per_class import NEGATIVE_TOL, ClassSpectrum, Transform, class_spectrum

# Lanczos needs two steps before its Ritz values bracket anything: with one, lambda_min = lambda_max.
MIN_STEPS = 2


def spread_classes(counts: Sequence[int], k: int) -> list[int]:
    """`k` classes spread evenly over the ranking by training count, largest first.

    The ranking is by count, descending, ties broken by the lower class id;
    the picks are the ranks round(i (C - 1) / (k - 1)) for i = 0..k-1, so the
    largest and the smallest class are always in (CIFAR-10-LT, k = 3: 0, 4, 9).
    k = 1 picks the largest class; k >= C gives every class.
    """
    if k < 1:
        raise ConfigError(f"the number of classes to analyse must be at least 1, got {k}")
    ranking = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    if k >= len(ranking):
        return ranking
    if k == 1:
        return ranking[:1]
    return [ranking[round(i * (len(ranking) - 1) / (k - 1))] for i in range(k)]


def check_classes(classes: Sequence[int] | None, num_classes: int) -> list[int]:
    """The class ids to analyse: all of them for None, else `classes` without repeats, each in [0, num_classes)."""
    if classes is None:
        return list(range(num_classes))
    chosen: list[int] = []
    for class_id in classes:
        if not 0 <= class_id < num_classes:
            raise ConfigError(
                f"class {class_id} is not a class of this model; its classes are 0..{num_classes - 1}"
            )
        if class_id not in chosen:
            chosen.append(class_id)
    if not chosen:
        raise ConfigError("no classes to analyse; name at least one")
    return chosen


def analyze(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    counts: Sequence[int],
    *,
    classes: Sequence[int] | None = None,
    loss_fn: LossFn = F.cross_entropy,
    steps: int = 100,
    runs: int = 1,
    max_images: int | None = None,
    seed: int = 0,
    negative_tol: float = NEGATIVE_TOL,
    chunk_size: int = 256,
    method: str = "auto",
    basis_device: torch.device | str | None = None,
    transform: Transform | None = None,
    source: str = "the given labels",
) -> list[ClassSpectrum]:
    """The `ClassSpectrum` of each class in `classes` (default: all), in that order.

    Args:
        model: the classifier, analysed in eval mode and left as it was.
        inputs, targets: the images and labels to draw each class's images
            from (e.g. the training split); `inputs` may stay in stored form
            when `transform` turns a class's images into model inputs.
        counts: training images per class; `len(counts)` is the class count.
        loss_fn: the mean loss; plain cross-entropy by default, as in the paper.
        steps: Lanczos steps per run (at least 2); one product H @ v each.
        runs: independent Lanczos runs per class, averaged in the density.
        max_images: analyse at most this many images per class, drawn
            reproducibly from `seed` (see `class_indices`).
        source: how error messages name where the images come from.

    The other arguments are those of `class_spectrum`. Every class is checked
    to occur in `targets` before any product is computed.
    """
    if steps < MIN_STEPS:
        raise ConfigError(
            f"steps must be at least {MIN_STEPS} (one Lanczos step cannot separate lambda_min from "
            f"lambda_max), got {steps}"
        )
    if runs < 1:
        raise ConfigError(f"runs must be at least 1, got {runs}")
    chosen = check_classes(classes, len(counts))
    present = set(torch.unique(targets.cpu()).tolist())
    missing = [class_id for class_id in chosen if class_id not in present]
    if missing:
        listed = ", ".join(map(str, missing))
        raise ConfigError(f"class {listed} has no images in {source}; choose classes that occur there")
    return [
        class_spectrum(
            model,
            loss_fn,
            inputs,
            targets,
            class_id,
            steps=steps,
            runs=runs,
            seed=seed,
            max_images=max_images,
            negative_tol=negative_tol,
            chunk_size=chunk_size,
            method=method,
            basis_device=basis_device,
            transform=transform,
        )
        for class_id in chosen
    ]


def spectrum_record(spectrum: ClassSpectrum, train_count: int, *, detail: bool = True) -> dict:
    """One class's summary for JSON, with its training count; NaN (lambda_max = 0) becomes None.

    With `detail`, also the positions of the images used and each Lanczos
    run's quadrature nodes and weights (enough to redraw the density with any
    smoothing); without, a compact line for metrics.jsonl.
    """
    summary = spectrum.as_dict()
    indices = summary.pop("indices")
    record = {"class_id": summary.pop("class_id"), "train_count": int(train_count), **summary}
    record = {key: _finite_or_none(value) for key, value in record.items()}
    if detail:
        density = spectrum.density
        record["indices"] = indices
        record["density"] = {
            "sigma": density.default_sigma(),
            "nodes": [run.ritz_values.tolist() for run in density.runs],
            "weights": [run.ritz_weights.tolist() for run in density.runs],
        }
    return record


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value
