"""Per-class weights: class-balanced "effective number" weights and the DRW schedule."""

from __future__ import annotations

import torch

from tailsam.errors import ConfigError
from tailsam.losses.base import ClassCounts, as_class_counts

WEIGHT_KINDS = ("none", "cb")
# loss.weighting: none, static class-balanced weights, or DRW (class-balanced after `after` epochs).
WEIGHTINGS = ("none", "cb", "drw")


def class_weights(counts: ClassCounts, kind: str = "cb", beta: float = 0.9999) -> torch.Tensor | None:
    """Per-class weights [C] (float32) of `kind`: "none" gives None, "cb" class-balanced weights.

    Class-balanced (Cui et al. 2019): w_c = (1 - beta) / (1 - beta^n_c), the
    inverse "effective number" of samples, rescaled to sum to C so that the
    loss keeps the scale of unweighted CE.
    """
    if kind not in WEIGHT_KINDS:
        raise ConfigError(f"class weight kind must be one of {', '.join(WEIGHT_KINDS)}, got {kind!r}")
    if kind == "none":
        return None
    if not 0 <= beta < 1:
        raise ConfigError(f"class-balanced beta must be in [0, 1), got {beta}")
    counts64 = as_class_counts(counts)
    weights = (1 - beta) / (1 - beta**counts64)
    return (weights * (len(counts64) / weights.sum())).float()


class DRW:
    """Deferred re-weighting (Cao et al. 2019): no weights for the first `after` epochs, class-balanced after.

    `weight_at(epoch)` takes the 1-indexed epoch; CIFAR recipes use after=160:
    plain for epochs 1..160, weighted from the 161st of 200, when the learning
    rate drops. Apply it once per epoch with `loss.set_weight(drw.weight_at(epoch))`.
    """

    def __init__(self, counts: ClassCounts, after: int = 160, beta: float = 0.9999):
        if after < 0:
            raise ConfigError(f"DRW's `after` (epochs before the weights) must be >= 0, got {after}")
        self.after = after
        self.weights = class_weights(counts, "cb", beta)

    def weight_at(self, epoch: int) -> torch.Tensor | None:
        """None in epochs 1..after, the class-balanced weights (a fresh copy) from epoch after + 1 on."""
        return None if epoch <= self.after else self.weights.clone()

    def __repr__(self) -> str:
        return f"DRW(after={self.after}, weights={self.weights.tolist()})"
