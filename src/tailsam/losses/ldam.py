"""Label-distribution-aware margin loss (Cao et al. 2019): larger margins for rarer classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailsam.errors import ConfigError
from tailsam.losses.base import ClassCountLoss, ClassCounts
from tailsam.losses.build import LOSSES


@LOSSES.register(
    "ldam",
    hparams={"max_m": 0.5, "s": 30.0},
    reduces_to_ce={"hparams": {"max_m": 0.0, "s": 1.0}, "uniform_counts": False},
    paper="Cao et al. 2019, Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss",
    head="normed",
)
class LDAMLoss(ClassCountLoss):
    """CE(s * (z - m_y e_y), y) with margin m_c proportional to n_c^(-1/4), the largest = max_m.

    The margin is subtracted from the true-class logit only, then all logits
    are scaled by s. Meant for the cosine ("normed") head, whose logits lie in
    [-1, 1]. Reduces to CE when max_m = 0 and s = 1 (on any head).
    """

    def __init__(
        self, counts: ClassCounts, max_m: float = 0.5, s: float = 30.0,
        weight: torch.Tensor | None = None, reduction: str = "mean",
    ):
        if max_m < 0:
            raise ConfigError(f"LDAM max_m must be >= 0, got {max_m}")
        if s <= 0:
            raise ConfigError(f"LDAM scale s must be > 0, got {s}")
        super().__init__(counts, weight, reduction)
        self.max_m = max_m
        self.s = s
        margins = self.class_counts.double() ** -0.25
        self.register_buffer("margins", (margins * (max_m / margins.max())).float(), persistent=False)

    def per_sample_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        true_class = F.one_hot(target, self.num_classes).to(logits.dtype)
        adjusted = logits - true_class * self.margins[target].unsqueeze(1)
        return F.cross_entropy(self.s * adjusted, target, reduction="none")

    def extra_repr(self) -> str:
        return f"max_m={self.max_m}, s={self.s}"
