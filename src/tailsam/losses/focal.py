"""Focal loss (Lin et al. 2017) on the per-sample cross-entropy, as in the LDAM-DRW baselines."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailsam.errors import ConfigError
from tailsam.losses.base import ClassCountLoss, ClassCounts
from tailsam.losses.build import LOSSES


@LOSSES.register(
    "focal",
    hparams={"gamma": 1.0},
    reduces_to_ce={"hparams": {"gamma": 0.0}, "uniform_counts": False},
    paper="Lin et al. 2017, Focal Loss for Dense Object Detection",
)
class FocalLoss(ClassCountLoss):
    """l = (1 - p_y)^gamma * CE, p_y = exp(-CE) the softmax probability of the true class.

    Well-classified samples (p_y near 1) are down-weighted. Class weights
    multiply l like every tailsam loss. Reduces to CE when gamma = 0.
    (The LDAM-DRW code puts the weights inside the exponent and averages
    without dividing by the weights; the two agree when unweighted.)
    """

    def __init__(
        self, counts: ClassCounts, gamma: float = 1.0,
        weight: torch.Tensor | None = None, reduction: str = "mean",
    ):
        if gamma < 0:
            raise ConfigError(f"focal loss gamma must be >= 0, got {gamma}")
        super().__init__(counts, weight, reduction)
        self.gamma = gamma

    def per_sample_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, target, reduction="none")
        # 1 - exp(-ce) via expm1: exact for the tiny ce of confident samples.
        one_minus_p = -torch.expm1(-ce)
        return one_minus_p.clamp(min=0) ** self.gamma * ce

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"
