"""ImbSAM (Zhou et al. 2023, Imbalanced SAM): SAM on the tail classes' loss only (../shared/METHODS.md section 5).

Classes with fewer than eta training images (method.args.eta, default 20) are the tail. The loss of a batch
of B is L_head + L_tail with L_head = (1/B) sum over head samples of CE and L_tail = (w/B) sum over tail
samples (w = method.args.tail_weight, 2 as the reference's code since 2023-09-15). The update is grouped SAM
(methods/steps.py GroupedSAMUpdate): the head's gradient at w, the tail's at w + e with e = rho grad L_tail /
||grad L_tail|| (rho: sam.rho and its schedule). A batch without a tail sample is an SGD step on the head
loss, without the extra pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailsam.errors import ConfigError
from tailsam.methods.base import Method, MethodParts, StepOutput, Update
from tailsam.methods.registry import METHODS
from tailsam.methods.steps import Autocast, GroupedSAMUpdate
from tailsam.optim import SAM

DEFAULT_ARGS = {"eta": 20, "tail_weight": 2.0}


@METHODS.register("imbsam", paper="Zhou et al. 2023, ImbSAM: A Closer Look at Sharpness-Aware Minimization in "
                  "Class-Imbalanced Recognition (ICCV)")
class ImbSAM(Method):
    """SAM on the tail classes' loss only; method.args: eta (tail: fewer training images), tail_weight."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        config = parts.config
        args = {**DEFAULT_ARGS, **config.method.args}
        unknown = sorted(set(args) - set(DEFAULT_ARGS))
        if unknown:
            raise ConfigError(f"method imbsam has no setting {', '.join(unknown)}; valid: {', '.join(DEFAULT_ARGS)}")
        if config.sam.kind != "sam":
            raise ConfigError(f"method imbsam needs sam.kind=sam (its radius is sam.rho), got {config.sam.kind}")
        if (config.loss.name, config.loss.weighting) != ("ce", "none"):
            raise ConfigError("method imbsam splits cross-entropy into head and tail: keep loss.name=ce and "
                              "loss.weighting=none")
        counts = torch.tensor(parts.data.counts)
        self.tail = (counts < float(args["eta"])).to(parts.device)
        self.tail_weight = float(args["tail_weight"])

    def make_update(self, optimizer: torch.optim.Optimizer, *, autocast: Autocast,
                    scaler: torch.amp.GradScaler | None, local_perturbation: bool) -> Update:
        if not isinstance(optimizer, SAM) or scaler is not None:
            raise ConfigError("method imbsam needs sam.kind=sam and a precision without a gradient scaler (not fp16)")
        return GroupedSAMUpdate(optimizer, self.net, scales=(0.0, 1.0), autocast=autocast,
                                freeze_bn=self.parts.config.sam.freeze_bn)

    def step(self, batch) -> StepOutput:
        images, labels = batch
        tail = self.tail[labels].float()

        def loss_pass():
            logits = self.net(images)
            per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
            head = (per_sample * (1 - tail)).sum() / len(labels)
            tail_loss = self.tail_weight * (per_sample * tail).sum() / len(labels)
            return head + tail_loss, logits, [head, tail_loss]

        loss, logits = self.update(loss_pass)
        return StepOutput(loss, logits, labels)
