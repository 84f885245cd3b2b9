"""Vector-scaling loss (Kini et al. 2021): a multiplicative and an additive logit adjustment."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailsam.losses.base import ClassCountLoss, ClassCounts
from tailsam.losses.build import LOSSES


@LOSSES.register(
    "vs",
    hparams={"gamma": 0.3, "tau": 1.0},
    reduces_to_ce={"hparams": {"gamma": 0.0, "tau": 0.0}, "uniform_counts": False},
    paper="Kini et al. 2021, Label-Imbalanced and Group-Sensitive Classification under Overparameterization",
)
class VSLoss(ClassCountLoss):
    """CE(z_c / Delta_c + tau * log pi_c, y), Delta_c = (n_max / n_c)^gamma, pi_c = n_c / sum(n).

    Delta_c is (1/n_c)^gamma divided by its minimum, so the largest class has
    Delta = 1 and rarer classes have their logits shrunk, which pushes the
    network to larger margins for them. The adjustment is for training only:
    predict with the plain logits. Reduces to CE when gamma = 0 and tau = 0.
    """

    def __init__(
        self, counts: ClassCounts, gamma: float = 0.3, tau: float = 1.0,
        weight: torch.Tensor | None = None, reduction: str = "mean",
    ):
        super().__init__(counts, weight, reduction)
        self.gamma = gamma
        self.tau = tau
        counts = self.class_counts.double()
        delta = (counts.max() / counts) ** gamma
        self.register_buffer("logit_scale", (1.0 / delta).float(), persistent=False)
        log_prior = torch.log(counts / counts.sum())
        self.register_buffer("logit_offset", (tau * log_prior).float(), persistent=False)

    def per_sample_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits * self.logit_scale + self.logit_offset, target, reduction="none")

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, tau={self.tau}"
