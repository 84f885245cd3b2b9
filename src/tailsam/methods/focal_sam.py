"""Focal-SAM (ICML 2025; code scongl/Focal-SAM): a focal-weighted sharpness penalty per class
(../shared/METHODS.md section 7).

With priors pi_c = n_c / N, beta_c = lambda (1 - pi_c)^gamma (method.args.sharpness = lambda,
method.args.flat_gamma = gamma). A batch's per-sample losses l_i (the run's loss, reduction none) split into
two groups of grouped SAM (methods/grouped.py): (1/B) sum (1 - beta_{y_i}) l_i at w and
(1/B) sum beta_{y_i} l_i at w + e, e along that group's own gradient with radius sam.rho (with class
weights, l_i is weighted and B their sum). lambda = 0 is SGD; gamma = 0, lambda = 1 is SAM.
"""

from __future__ import annotations

import torch

from tailsam.methods.base import MethodParts, StepOutput
from tailsam.methods.grouped import GroupedSAMMethod, batch_losses
from tailsam.methods.registry import METHODS

DEFAULT_ARGS = {"sharpness": 0.5, "flat_gamma": 3.0}


def focal_coefficients(counts: list[int], sharpness: float, flat_gamma: float) -> torch.Tensor:
    """beta_c = lambda (1 - pi_c)^gamma with pi_c = n_c / N."""
    n = torch.tensor(counts, dtype=torch.float64)
    return (sharpness * (1 - n / n.sum()) ** flat_gamma).float()


@METHODS.register("focal-sam", paper="Focal-SAM, ICML 2025 (code: scongl/Focal-SAM)", trains_criterion=True)
class FocalSAM(GroupedSAMMethod):
    """Grouped SAM with the focal class coefficients; method.args: sharpness (lambda), flat_gamma (gamma)."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        args = self.settings(DEFAULT_ARGS)
        self.beta = focal_coefficients(parts.data.counts, float(args["sharpness"]),
                                       float(args["flat_gamma"])).to(parts.device)

    def step(self, batch) -> StepOutput:
        images, labels = batch
        beta = self.beta[labels]

        def loss_pass():
            logits = self.net(images)
            per_sample, total = batch_losses(self.criterion, logits, labels)
            flat = ((1 - beta) * per_sample).sum() / total
            sharp = (beta * per_sample).sum() / total
            return flat + sharp, logits, [flat, sharp]

        loss, logits = self.update(loss_pass)
        return StepOutput(loss, logits, labels)
