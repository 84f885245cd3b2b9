"""Focal-SAM (ICML 2025; code scongl/Focal-SAM): a focal-weighted sharpness penalty per class (../shared/METHODS.md section 7).

With priors pi_c = n_c / N, beta_c = lambda (1 - pi_c)^gamma (method.args.sharpness = lambda,
method.args.flat_gamma = gamma). A batch's per-sample losses l_i (the run's loss, reduction none) split into
two groups of grouped SAM (methods/steps.py GroupedSAMUpdate): (1/B) sum (1 - beta_{y_i}) l_i at w and
(1/B) sum beta_{y_i} l_i at w + e, e along that group's own gradient with radius sam.rho. lambda = 0 is SGD;
gamma = 0, lambda = 1 is SAM.
"""

from __future__ import annotations

import torch

from tailsam.errors import ConfigError
from tailsam.methods.base import Method, MethodParts, StepOutput, Update
from tailsam.methods.registry import METHODS
from tailsam.methods.steps import Autocast, GroupedSAMUpdate
from tailsam.optim import SAM

DEFAULT_ARGS = {"sharpness": 0.5, "flat_gamma": 3.0}


def focal_coefficients(counts: list[int], sharpness: float, flat_gamma: float) -> torch.Tensor:
    """beta_c = lambda (1 - pi_c)^gamma with pi_c = n_c / N."""
    n = torch.tensor(counts, dtype=torch.float64)
    return (sharpness * (1 - n / n.sum()) ** flat_gamma).float()


@METHODS.register("focal-sam", paper="Focal-SAM, ICML 2025 (code: scongl/Focal-SAM)")
class FocalSAM(Method):
    """Grouped SAM with the focal class coefficients; method.args: sharpness (lambda), flat_gamma (gamma)."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        config = parts.config
        args = {**DEFAULT_ARGS, **config.method.args}
        unknown = sorted(set(args) - set(DEFAULT_ARGS))
        if unknown:
            raise ConfigError(f"method focal-sam has no setting {', '.join(unknown)}; valid: {', '.join(DEFAULT_ARGS)}")
        if config.sam.kind != "sam":
            raise ConfigError(f"method focal-sam needs sam.kind=sam (its radius is sam.rho), got {config.sam.kind}")
        self.beta = focal_coefficients(parts.data.counts, float(args["sharpness"]),
                                       float(args["flat_gamma"])).to(parts.device)

    def make_update(self, optimizer: torch.optim.Optimizer, *, autocast: Autocast,
                    scaler: torch.amp.GradScaler | None, local_perturbation: bool) -> Update:
        if not isinstance(optimizer, SAM) or scaler is not None:
            raise ConfigError("method focal-sam needs sam.kind=sam and a precision without a gradient scaler "
                              "(not fp16)")
        return GroupedSAMUpdate(optimizer, self.net, scales=(0.0, 1.0), autocast=autocast,
                                freeze_bn=self.parts.config.sam.freeze_bn)

    def step(self, batch) -> StepOutput:
        images, labels = batch
        beta = self.beta[labels]

        def loss_pass():
            logits = self.net(images)
            per_sample, _ = self.criterion.weighted_losses(logits, labels)
            flat = ((1 - beta) * per_sample).sum() / len(labels)
            sharp = (beta * per_sample).sum() / len(labels)
            return flat + sharp, logits, [flat, sharp]

        loss, logits = self.update(loss_pass)
        return StepOutput(loss, logits, labels)
