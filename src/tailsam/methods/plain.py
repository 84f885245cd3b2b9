"""The plain method: the run's loss on the model's logits, one view of each image, one sampler."""

from __future__ import annotations

from tailsam.errors import ConfigError
from tailsam.methods.base import Method, StepOutput
from tailsam.methods.registry import METHODS
from tailsam.methods.steps import classify


@METHODS.register("plain", paper="CE, focal, LDAM, VS, LA, Balanced Softmax with any weighting; "
                  "with SAM: Rangwani et al. 2022")
class Plain(Method):
    """Each batch of the training loader, classified once per pass: `loss_fn(net(images), labels)`."""

    def __init__(self, parts):
        super().__init__(parts)
        if parts.config.model.head == "glmc":   # its training output is four heads' (GLMCOutput), not logits
            raise ConfigError("model.head=glmc is GLMC's: train it with method.name=glmc")

    def step(self, batch) -> StepOutput:
        images, labels = batch
        loss, logits = self.update(classify(self.net, self.loss_fn, images, labels))
        return StepOutput(loss, logits, labels)
