"""Keep SAM's second (perturbed) forward pass from moving BatchNorm running statistics."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Inside the block, BatchNorm layers normalise with batch statistics as usual
    in training mode but leave ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` untouched; everything is restored on exit.

    Use it around the forward pass at w + e: the statistics have already been
    updated once for this batch at w, and the perturbed weights are not the
    ones being trained.

    It switches ``track_running_stats`` off rather than setting momentum to 0:
    that also covers ``momentum=None`` (cumulative average) and keeps
    ``num_batches_tracked`` from counting the extra pass. Covers every
    ``_BatchNorm`` subclass (BatchNorm1d/2d/3d, SyncBatchNorm), not TorchScript
    modules, whose flag is a compile-time constant.
    """
    tracking = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for module in tracking:
        module.track_running_stats = False
    try:
        yield
    finally:
        for module in tracking:
            module.track_running_stats = True
