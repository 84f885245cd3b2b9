"""ImbSAM (ICCV 2023; code cool-xuan/Imbalanced_SAM): SAM on the tail classes' loss only
(../shared/METHODS.md section 5).

Classes with fewer than eta training images (method.args.eta, default 20) are the tail. The loss of a batch
of B is L_head + L_tail with L_head = (1/B) sum over head samples of the run's per-sample loss (CE in the
reference) and L_tail = (w/B) sum over tail samples (w = method.args.tail_weight, 2 as the reference's code
since 2023-09-15). The update is grouped SAM
(methods/grouped.py): the head's gradient at w, the tail's at w + e with e = rho grad L_tail / ||grad L_tail||
(rho: sam.rho and its schedule). A batch without a tail sample is an SGD step on the head loss, without the
extra pass.
"""

from __future__ import annotations

from tailsam.methods.base import MethodParts, StepOutput
from tailsam.methods.grouped import GroupedSAMMethod
from tailsam.methods.registry import METHODS

DEFAULT_ARGS = {"eta": 20, "tail_weight": 2.0}


@METHODS.register("imbsam", paper="ImbSAM, ICCV 2023 (code: cool-xuan/Imbalanced_SAM)", trains_criterion=True)
class ImbSAM(GroupedSAMMethod):
    """SAM on the tail classes' loss only; method.args: eta (tail: fewer training images), tail_weight."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        args = self.settings(DEFAULT_ARGS)
        self.tail = self.tail_classes(float(args["eta"]))
        self.tail_weight = float(args["tail_weight"])

    def step(self, batch) -> StepOutput:
        images, labels = batch
        loss, logits = self.update(self.head_tail_pass(images, labels, self.tail, self.tail_weight))
        return StepOutput(loss, logits, labels)
