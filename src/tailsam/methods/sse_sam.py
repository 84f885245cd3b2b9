"""SSE-SAM (Stage-wise Saddle-Escaping SAM, AAAI 2025; code Zemdalk/SSE-SAM): SAM on the head and on the tail
classes' losses separately, the head's radius switched off late in training (../shared/METHODS.md section 8).

Tail: the classes with n_c < eta (method.args.eta). L_head and L_tail are the (1/B)-normalised sums of the
per-sample CE over head and tail samples (no factor 2). Grouped SAM (methods/steps.py GroupedSAMUpdate)
perturbs each along its own gradient: the tail with radius sam.rho (rho_t), the head with
method.args.head_rho (rho_h) in 1-indexed epochs e <= stage * E and 0 after (stage = method.args.stage,
in (0, 1): 0.7 of 200 epochs keeps rho_h through epoch 140). rho_h = 0 is ImbSAM with tail weight 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailsam.errors import ConfigError
from tailsam.methods.base import Method, MethodParts, StepOutput, Update
from tailsam.methods.registry import METHODS
from tailsam.methods.steps import Autocast, GroupedSAMUpdate
from tailsam.optim import SAM

DEFAULT_ARGS = {"eta": 100, "head_rho": 0.05, "stage": 0.7}


@METHODS.register("sse-sam", paper="SSE-SAM, AAAI 2025 (code: Zemdalk/SSE-SAM)")
class SSESAM(Method):
    """Head and tail SAM with their own radii; method.args: eta, head_rho, stage (sam.rho is the tail's)."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        config = parts.config
        args = {**DEFAULT_ARGS, **config.method.args}
        unknown = sorted(set(args) - set(DEFAULT_ARGS))
        if unknown:
            raise ConfigError(f"method sse-sam has no setting {', '.join(unknown)}; valid: {', '.join(DEFAULT_ARGS)}")
        if config.sam.kind != "sam":
            raise ConfigError(f"method sse-sam needs sam.kind=sam (sam.rho is the tail's radius), got {config.sam.kind}")
        if not 0 < float(args["stage"]) < 1 or float(args["head_rho"]) < 0:
            raise ConfigError(f"method sse-sam needs 0 < stage < 1 and head_rho >= 0, got stage={args['stage']}, "
                              f"head_rho={args['head_rho']}")
        if (config.loss.name, config.loss.weighting) != ("ce", "none"):
            raise ConfigError("method sse-sam splits cross-entropy into head and tail: keep loss.name=ce and "
                              "loss.weighting=none")
        self.tail = (torch.tensor(parts.data.counts) < float(args["eta"])).to(parts.device)
        self.head_rho, self.last_head_epoch = float(args["head_rho"]), float(args["stage"]) * config.train.epochs

    def make_update(self, optimizer: torch.optim.Optimizer, *, autocast: Autocast,
                    scaler: torch.amp.GradScaler | None, local_perturbation: bool) -> Update:
        if not isinstance(optimizer, SAM) or scaler is not None:
            raise ConfigError("method sse-sam needs sam.kind=sam and a precision without a gradient scaler (not fp16)")
        return GroupedSAMUpdate(optimizer, self.net, scales=(0.0, 1.0), autocast=autocast,
                                freeze_bn=self.parts.config.sam.freeze_bn)

    def start_epoch(self, epoch: int) -> dict:
        values = super().start_epoch(epoch)
        head_rho = self.head_rho if epoch <= self.last_head_epoch else 0.0
        rho = self.update.optimizer.param_groups[0]["rho"]   # the tail's, as the rho schedule set it this epoch
        self.update.scales = (head_rho / rho if rho > 0 else 0.0, 1.0)
        return {**values, "head_rho": head_rho}

    def step(self, batch) -> StepOutput:
        images, labels = batch
        tail = self.tail[labels].float()

        def loss_pass():
            logits = self.net(images)
            per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
            head = (per_sample * (1 - tail)).sum() / len(labels)
            tail_loss = (per_sample * tail).sum() / len(labels)
            return head + tail_loss, logits, [head, tail_loss]

        loss, logits = self.update(loss_pass)
        return StepOutput(loss, logits, labels)
