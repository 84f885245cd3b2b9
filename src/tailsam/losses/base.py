"""What every tailsam loss shares: class counts, optional class weights, torch's reduction.

A loss computes an unweighted per-sample value in `per_sample_loss`; the base
class multiplies it by the weight of the sample's class and reduces it the way
`F.cross_entropy(weight=...)` does, so every loss re-weights identically and a
weight set later (DRW) takes effect on the next call.
"""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np
import torch
from torch import nn

from tailsam.errors import ConfigError

REDUCTIONS = ("mean", "sum", "none")

ClassCounts = Sequence[int] | np.ndarray | torch.Tensor


def as_class_counts(counts: ClassCounts) -> torch.Tensor:
    """Training images per class as a float64 tensor [C]; ConfigError if empty or a class has none."""
    counts = torch.as_tensor(counts, dtype=torch.float64, device="cpu").flatten()
    if counts.numel() == 0:
        raise ConfigError("class counts are empty: the training split has no classes")
    empty = (~(counts > 0)).nonzero().flatten().tolist()
    if empty:
        raise ConfigError(
            f"class(es) {empty} have no training images; every class needs at least one "
            "(lower the imbalance ratio or raise n_max)"
        )
    return counts


class ClassCountLoss(nn.Module, abc.ABC):
    """Base of the tailsam losses: `forward(logits [N, C], target [N]) -> loss`.

    `weight` (tensor [C] or None) re-weights classes; `set_weight` replaces it
    at any time (DRW). Reduction "mean" is sum_i w_{y_i} l_i / sum_i w_{y_i},
    as in torch's weighted cross-entropy; "sum" and "none" as in torch.
    The loss is computed in float32 whatever the logits' dtype (bf16 autocast).
    Counts-derived tensors are non-persistent buffers: they follow `.to(device)`
    but stay out of the state_dict, since the constructor arguments rebuild them.
    """

    def __init__(self, counts: ClassCounts, weight: torch.Tensor | None = None, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigError(f"loss reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.reduction = reduction
        self.register_buffer("class_counts", as_class_counts(counts).float(), persistent=False)
        self.register_buffer("weight", None, persistent=False)
        self.set_weight(weight)

    @property
    def num_classes(self) -> int:
        return self.class_counts.numel()

    def set_weight(self, weight: torch.Tensor | None) -> None:
        """Use per-class `weight` ([C], finite, >= 0) from now on; None turns re-weighting off."""
        if weight is None:
            self.weight = None
            return
        weight = torch.as_tensor(weight).detach()
        if weight.shape != (self.num_classes,):
            raise ConfigError(f"class weights must have shape [{self.num_classes}], got {list(weight.shape)}")
        if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
            raise ConfigError(f"class weights must be finite and >= 0, got {weight.tolist()}")
        # A copy on the loss's device, so a later change to the caller's tensor cannot leak in.
        self.weight = weight.to(device=self.class_counts.device, dtype=torch.float32, copy=True)

    @abc.abstractmethod
    def per_sample_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unweighted loss of each sample, shape [N], from float32 `logits` [N, C]."""

    def weighted_losses(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-sample losses times their class weights, and those weights ([N] each; None without weights).

        The "mean" reduction is their sum over the weights' sum; a data-parallel
        run sums both over every process before dividing (losses/global_batch.py).
        """
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"{type(self).__name__} expects logits [N, {self.num_classes}], got {list(logits.shape)}"
            )
        # float32 even under bf16 autocast: softmax over low-precision logits
        # loses the small margins that the long-tail losses are built on.
        losses = self.per_sample_loss(logits.float(), target)
        if self.weight is None:
            return losses, None
        sample_weight = self.weight[target]
        return sample_weight * losses, sample_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses, sample_weight = self.weighted_losses(logits, target)
        if self.reduction == "none":
            return losses
        if self.reduction == "sum" or (self.reduction == "mean" and sample_weight is None):
            return getattr(losses, self.reduction)()
        return losses.sum() / sample_weight.sum()
