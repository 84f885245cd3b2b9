"""Plain (optionally class-weighted) cross-entropy: the baseline of every table."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailsam.losses.base import ClassCountLoss
from tailsam.losses.build import LOSSES


@LOSSES.register(
    "ce",
    hparams={},
    reduces_to_ce={"hparams": {}, "uniform_counts": False},
    paper="cross-entropy; with class-balanced weights: Cui et al. 2019 (CB), Cao et al. 2019 (DRW)",
)
class CrossEntropyLoss(ClassCountLoss):
    """Softmax cross-entropy, -log softmax(z)_y, optionally class-weighted.

    It is the reference the other losses reduce to. `counts` only fixes the
    number of classes here (every tailsam loss takes them, so all build alike).
    """

    def per_sample_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, reduction="none")
