"""Methods: what one training step computes and how it moves the weights; the loop does not know which runs.

    method = METHODS.build(config.method.name, parts)     # parts: tailsam.methods.MethodParts
    method.update = SAMUpdate(optimizer, parts.net, autocast=..., freeze_bn=True)
    for epoch in ...:
        method.start_epoch(epoch)
        for batch in method.batches:
            loss, logits, labels = method.step(batch)

Registered: `plain` (CE, focal, LDAM, VS, LA, Balanced Softmax, each with SGD
or SAM); `glmc` (GLMC and GLMC+SAM: two views of an instance and a re-sampled
batch, `PairedBatches`, mixing, the four heads of `model.head=glmc`, a loss
pass that also returns the classification loss SAM's ascent climbs);
`paco` (PaCo and PaCo+SAM: the key encoder and the queue live in `self.extra`;
`step` momentum-updates and computes the keys once, before the pass, which
closes over them, so SAM's two passes use the same keys and queue; the queue
advances once, after the update); and `imbsam` (a loss pass returning head and
tail losses, and `make_update` giving grouped SAM, `GroupedSAMUpdate`: one
forward at w, a perturbed pass only for groups with a radius), with `focal-sam`
(focal class coefficients) and `sse-sam` (head and tail radii, the head's
switched off late) on the same update (METHODS.md §0.5); and `cc-sam` (CC-SAM's two
stages: MixUp with a class-conditional perturbation of the linear classifier, then the
classifier re-trained on class-aware batches, `StagedBatches`).

A step of plain, glmc or paco (single process) never waits for the device (no
`.item()`, no branch on a tensor value), so it can be captured in a CUDA graph;
grouped SAM checks for an empty group on the host.
"""

from tailsam.methods import cc_sam, focal_sam, glmc, imbsam, paco, plain, sse_sam  # noqa: F401  (registers the methods)
from tailsam.methods.base import Batches, Method, MethodParts, StepOutput, Update
from tailsam.methods.registry import METHODS
from tailsam.methods.steps import GroupedSAMUpdate, LossPass, SAMUpdate, SGDUpdate, classify, sam_step, sgd_step

__all__ = ["Batches", "GroupedSAMUpdate", "LossPass", "METHODS", "Method", "MethodParts", "SAMUpdate", "SGDUpdate",
           "StepOutput", "Update", "classify", "sam_step", "sgd_step"]
