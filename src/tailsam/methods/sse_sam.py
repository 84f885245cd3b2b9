"""SSE-SAM (Stage-wise Saddle-Escaping SAM, AAAI 2025; code Zemdalk/SSE-SAM): SAM on the head and on the tail
classes' losses separately, the head's radius switched off late in training (../shared/METHODS.md section 8).

Tail: the classes with n_c < eta (method.args.eta). L_head and L_tail are the (1/B)-normalised sums of the
per-sample loss over head and tail samples (no factor 2). Grouped SAM (methods/grouped.py)
perturbs each along its own gradient: the tail with radius sam.rho (rho_t), the head with
method.args.head_rho (rho_h) in 1-indexed epochs e <= stage * E and 0 after (stage = method.args.stage,
in (0, 1): 0.7 of 200 epochs keeps rho_h through epoch 140). rho_h = 0 is ImbSAM with tail weight 1.
"""

from __future__ import annotations

from tailsam.errors import ConfigError
from tailsam.methods.base import MethodParts, StepOutput
from tailsam.methods.grouped import GroupedSAMMethod
from tailsam.methods.registry import METHODS

DEFAULT_ARGS = {"eta": 100, "head_rho": 0.05, "stage": 0.7}


@METHODS.register("sse-sam", paper="SSE-SAM, AAAI 2025 (code: Zemdalk/SSE-SAM)", trains_criterion=True)
class SSESAM(GroupedSAMMethod):
    """Head and tail SAM with their own radii; method.args: eta, head_rho, stage (sam.rho is the tail's)."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        args = self.settings(DEFAULT_ARGS)
        if not 0 < float(args["stage"]) < 1 or float(args["head_rho"]) < 0:
            raise ConfigError(f"method sse-sam needs 0 < stage < 1 and head_rho >= 0, got stage={args['stage']}, "
                              f"head_rho={args['head_rho']}")
        self.tail = self.tail_classes(float(args["eta"]))
        self.head_rho, self.last_head_epoch = float(args["head_rho"]), float(args["stage"]) * parts.config.train.epochs

    def start_epoch(self, epoch: int) -> dict:
        values = super().start_epoch(epoch)
        head_rho = self.head_rho if epoch <= self.last_head_epoch else 0.0
        rho = self.update.optimizer.param_groups[0]["rho"]   # the tail's, as the rho schedule set it this epoch
        self.update.scales = (head_rho / rho if rho > 0 else 0.0, 1.0)
        return {**values, "head_rho": head_rho}

    def step(self, batch) -> StepOutput:
        images, labels = batch
        loss, logits = self.update(self.head_tail_pass(images, labels, self.tail, 1.0))
        return StepOutput(loss, logits, labels)
