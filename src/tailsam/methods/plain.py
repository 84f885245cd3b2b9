"""The plain method: the run's loss on the model's logits, one view of each image, one sampler."""

from __future__ import annotations

from tailsam.errors import ConfigError
from tailsam.models import HEADS
from tailsam.methods.base import Method, StepOutput
from tailsam.methods.registry import METHODS
from tailsam.methods.steps import classify


@METHODS.register("plain", paper="CE, focal, LDAM, VS, LA, Balanced Softmax with any weighting; "
                  "with SAM: Rangwani et al. 2022", data_parallel=True, trains_criterion=True)
class Plain(Method):
    """Each batch of the training loader, classified once per pass: `loss_fn(net(images), labels)`."""

    def __init__(self, parts):
        super().__init__(parts)
        owner = HEADS.get(parts.config.model.head).info.method
        if owner is not None:   # in training such a head gives its method's outputs, not logits
            raise ConfigError(f"model.head={parts.config.model.head} is for method {owner}: train it with "
                              f"method.name={owner}")

    def step(self, batch) -> StepOutput:
        images, labels = batch
        loss, logits = self.update(classify(self.net, self.loss_fn, images, labels))
        return StepOutput(loss, logits, labels)
