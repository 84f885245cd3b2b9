"""What the grouped-SAM methods share (ImbSAM, Focal-SAM, SSE-SAM): the SAM optimizer's radius and a grouped
update (methods/steps.py GroupedSAMUpdate) with a first group at w and a second perturbed, and the head/tail
split of the per-sample loss that ImbSAM and SSE-SAM climb."""

from __future__ import annotations

import torch

from tailsam.errors import ConfigError
from tailsam.losses import ClassCountLoss
from tailsam.methods.base import Method, MethodParts, Update
from tailsam.methods.steps import Autocast, GroupedSAMUpdate, LossPass
from tailsam.optim import SAM


class GroupedSAMMethod(Method):
    """A method whose loss pass returns two group losses: the first taken at w, the second at w + e."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        if parts.config.sam.kind != "sam":
            raise ConfigError(f"method {parts.config.method.name} needs sam.kind=sam (its radius is sam.rho), "
                              f"got {parts.config.sam.kind}")

    def make_update(self, optimizer: torch.optim.Optimizer, *, autocast: Autocast,
                    scaler: torch.amp.GradScaler | None, local_perturbation: bool) -> Update:
        if not isinstance(optimizer, SAM) or scaler is not None:
            raise ConfigError(f"method {self.parts.config.method.name} needs sam.kind=sam and a precision without "
                              "a gradient scaler (not fp16)")
        return GroupedSAMUpdate(optimizer, self.net, scales=(0.0, 1.0), autocast=autocast,
                                freeze_bn=self.parts.config.sam.freeze_bn)

    def tail_classes(self, eta: float) -> torch.Tensor:
        """[C] booleans: the classes with fewer than `eta` training images."""
        return (torch.tensor(self.parts.data.counts) < eta).to(self.parts.device)

    def head_tail_pass(self, images: torch.Tensor, labels: torch.Tensor, tail: torch.Tensor,
                       tail_weight: float) -> LossPass:
        """The loss pass of the head samples' summed per-sample loss over B, and tail_weight times the tail
        samples' over B. The loss is the run's: the references publish plain CE; LDAM+DRW is tailsam's
        extension, for the seed paper's setting. With class weights (DRW) the per-sample losses are
        weighted and B becomes the batch's sum of weights, as in the run's mean loss."""
        in_tail = tail[labels].float()

        def loss_pass():
            logits = self.net(images)
            per_sample, total = batch_losses(self.criterion, logits, labels)
            head = (per_sample * (1 - in_tail)).sum() / total
            tail_loss = tail_weight * (per_sample * in_tail).sum() / total
            return head + tail_loss, logits, [head, tail_loss]

        return loss_pass


def batch_losses(criterion: ClassCountLoss, logits: torch.Tensor, labels: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor | int]:
    """The per-sample losses (times their class weights) and what the run's mean divides their sum by:
    B, or the batch's sum of class weights."""
    per_sample, weights = criterion.weighted_losses(logits, labels)
    return per_sample, len(labels) if weights is None else weights.sum()
