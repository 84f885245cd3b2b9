"""Losses for long-tailed classification, each an nn.Module built from the class counts.

`build_loss(name, counts, weight=None, **hparams)` builds any registered loss
(ce, focal, ldam, vs, la, balanced_softmax); `LOSSES` lists them with their
hyper-parameter defaults, paper and the setting in which each equals plain CE.
`class_weights` and `DRW` give the per-class weights that `loss.set_weight` takes.
`GlobalBatchLoss` makes any of them exact under data-parallel training.
"""

from tailsam.losses.base import ClassCountLoss, as_class_counts
from tailsam.losses.build import LOSSES, build_loss
from tailsam.losses.ce import CrossEntropyLoss
from tailsam.losses.focal import FocalLoss
from tailsam.losses.global_batch import GlobalBatchLoss
from tailsam.losses.ldam import LDAMLoss
from tailsam.losses.logit_adjustment import BalancedSoftmaxLoss, LogitAdjustedLoss
from tailsam.losses.vs import VSLoss
from tailsam.losses.weights import DRW, WEIGHTINGS, class_weights

__all__ = [
    "LOSSES", "WEIGHTINGS", "build_loss", "class_weights", "DRW", "as_class_counts", "ClassCountLoss",
    "GlobalBatchLoss", "CrossEntropyLoss", "FocalLoss", "LDAMLoss", "VSLoss", "LogitAdjustedLoss", "BalancedSoftmaxLoss",
]
