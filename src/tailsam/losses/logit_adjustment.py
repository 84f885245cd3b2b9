"""Additive prior corrections: logit-adjusted loss (Menon et al. 2021) and Balanced Softmax (Ren et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailsam.losses.base import ClassCountLoss, ClassCounts
from tailsam.losses.build import LOSSES


@LOSSES.register(
    "la",
    hparams={"tau": 1.0},
    reduces_to_ce={"hparams": {"tau": 0.0}, "uniform_counts": False},
    paper="Menon et al. 2021, Long-tail Learning via Logit Adjustment",
)
class LogitAdjustedLoss(ClassCountLoss):
    """CE(z_c + tau * log pi_c, y) with pi_c = n_c / sum(n), the training-set class prior.

    Adding the log prior during training makes the plain logits estimate a
    balanced posterior: predict with the unadjusted logits. Reduces to CE when
    tau = 0 (or when the counts are uniform: a constant shift changes no softmax).
    """

    def __init__(
        self, counts: ClassCounts, tau: float = 1.0,
        weight: torch.Tensor | None = None, reduction: str = "mean",
    ):
        super().__init__(counts, weight, reduction)
        self.tau = tau
        counts = self.class_counts.double()
        log_prior = torch.log(counts / counts.sum())
        self.register_buffer("logit_offset", (tau * log_prior).float(), persistent=False)

    def per_sample_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits + self.logit_offset, target, reduction="none")

    def extra_repr(self) -> str:
        return f"tau={self.tau}"


@LOSSES.register(
    "balanced_softmax",
    hparams={},
    reduces_to_ce={"hparams": {}, "uniform_counts": True},
    paper="Ren et al. 2020, Balanced Meta-Softmax for Long-Tailed Visual Recognition",
)
class BalancedSoftmaxLoss(LogitAdjustedLoss):
    """CE(z_c + log n_c, y): the logit-adjusted loss with tau = 1.

    log n_c and log pi_c differ by the constant log sum(n), which no softmax
    sees, so this is exactly `LogitAdjustedLoss(tau=1)`. Reduces to CE when
    every class has the same count.
    """

    def __init__(self, counts: ClassCounts, weight: torch.Tensor | None = None, reduction: str = "mean"):
        super().__init__(counts, tau=1.0, weight=weight, reduction=reduction)

    def extra_repr(self) -> str:
        return ""
