"""Classifier heads, chosen by name, shared by every backbone.

A head maps a pooled feature vector [N, in_features] to logits [N, num_classes]
(GLMC's and PaCo's, in training mode, to the outputs their methods train: GLMCOutput, PaCoOutput).
A head with a `backbone_init(init)` method chooses which of its layers take the backbone's initialisation.
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
    logits: str               # the range of the logits it gives
    method: str | None = None  # the method whose outputs it gives in training (None: logits, for any method)


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
    """The head registered as `name` (linear, normed, glmc, paco); ConfigError if unknown."""
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


HEADS.register("glmc", logits="fc_cb's at evaluation; all four heads' in training", method="glmc")(GLMCHeads)


class PaCoOutput(NamedTuple):
    """What PaCo's heads give in training mode (tailsam.methods.paco)."""

    logits: torch.Tensor   # the linear classifier on the pooled feature h (PaCo's class-wise centres)
    query: torch.Tensor    # the normalised projection of h, the contrastive feature


class PaCoHeads(nn.Module):
    """PaCo's heads on the pooled feature h (Cui et al. 2021): `linear` (d -> C, with bias) and the
    projection MLP (d -> d, BatchNorm, ReLU, d -> d/2) whose output is L2-normalised.

    Training mode returns a PaCoOutput; evaluation mode the classifier's logits alone (no prior term).
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)
        self.projection = nn.Sequential(nn.Linear(in_features, in_features), nn.BatchNorm1d(in_features), nn.ReLU(),
                                        nn.Linear(in_features, in_features // 2))

    def backbone_init(self, init) -> None:
        """The reference's init: the backbone's (Kaiming) for the MLP's last layer, which replaces the
        backbone's fc; PyTorch's defaults for the classifier and the MLP's first layer."""
        init(self.projection[-1])

    def forward(self, x: torch.Tensor) -> PaCoOutput | torch.Tensor:
        if not self.training:
            return self.linear(x)
        return PaCoOutput(self.linear(x), F.normalize(self.projection(x), dim=1))


HEADS.register("paco", logits="the classifier's at evaluation; with the contrastive query in training",
               method="paco")(PaCoHeads)
