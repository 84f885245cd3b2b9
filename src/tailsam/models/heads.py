"""Classifier heads, chosen by name, shared by every backbone.

A head maps a pooled feature vector [N, in_features] to logits [N, num_classes]
(GLMC's, in training mode, to the four outputs its method trains: GLMCOutput).
Backbones build theirs with `build_head`, so a new head (one class, one
registry line) is available to the CIFAR ResNets and any later backbone alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tailsam.registry import Registry


@dataclass(frozen=True)
class HeadInfo:
    logits: str   # the range of the logits it gives


HEADS = Registry("head", HeadInfo)


class NormedLinear(nn.Module):
    """Cosine classifier: logits = normalize(x) @ normalize(W), each in [-1, 1].

    W has shape [in_features, num_classes] and each class is one column. The
    logits are cosines, so a loss that wants sharper softmax scores scales
    them itself (LDAM multiplies by s = 30 inside the loss).
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, num_classes))
        # Unit-norm columns: the forward pass ignores the norm, but the gradient
        # of normalize(W) scales as 1/||W_c||, so the starting norm sets the
        # effective learning rate of the head; 1 is the LDAM-DRW choice.
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0)
            self.weight.div_(self.weight.norm(dim=0, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)

    def extra_repr(self) -> str:
        in_features, num_classes = self.weight.shape
        return f"in_features={in_features}, num_classes={num_classes}"


@HEADS.register("linear", logits="unbounded")
def linear_head(in_features: int, num_classes: int) -> nn.Module:
    """Plain affine classifier (nn.Linear with bias)."""
    return nn.Linear(in_features, num_classes)


HEADS.register("normed", logits="cosine in [-1, 1]")(NormedLinear)


def build_head(name: str, in_features: int, num_classes: int) -> nn.Module:
    """The head registered as `name` (linear, normed, glmc); ConfigError if unknown."""
    return HEADS.build(name, in_features, num_classes)


class GLMCOutput(NamedTuple):
    """What GLMC's heads give in training mode (tailsam.methods.glmc)."""

    logits: torch.Tensor            # fc: the conventional head, trained by the un-weighted loss
    balanced_logits: torch.Tensor   # fc_cb: the re-balanced head, the only one used at test time
    projection: torch.Tensor        # z = projection(f)
    prediction: torch.Tensor        # p = predictor(z), SimSiam-style


class GLMCHeads(nn.Module):
    """GLMC's four linear maps on the pooled feature f (Du et al. 2023): `fc` and `fc_cb` (d -> C, with
    bias), `projection` (d -> d/2) and `predictor` (d/2 -> d/2), no BatchNorm and no ReLU.

    Training mode returns a GLMCOutput; evaluation mode returns the `fc_cb` logits alone, so that
    evaluation, checkpoints and the Hessian analysis see the classifier GLMC tests with.
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        self.fc_cb = nn.Linear(in_features, num_classes)
        self.projection = nn.Linear(in_features, in_features // 2)
        self.predictor = nn.Linear(in_features // 2, in_features // 2)

    def forward(self, x: torch.Tensor) -> GLMCOutput | torch.Tensor:
        if not self.training:
            return self.fc_cb(x)
        z = self.projection(x)
        return GLMCOutput(self.fc(x), self.fc_cb(x), z, self.predictor(z))


HEADS.register("glmc", logits="fc_cb's at evaluation; all four heads' in training (methods/glmc.py)")(GLMCHeads)
