"""A loss's mean over the global batch of data-parallel processes, exact with unequal pieces and class weights.

Averaging per-process means is not the global-batch mean when the pieces
differ in size or, with class weights (CB, DRW), in total weight. So this
loss sums the weighted per-sample losses of the piece and divides by the
global sum of weights, times N to undo DistributedDataParallel's average:
the gradient then is that of the global-batch loss, whatever the pieces hold.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from tailsam.losses.base import ClassCountLoss


class GlobalBatchLoss(nn.Module):
    """`criterion`'s mean over the global batch, scaled so that DDP's gradient average gives its gradient.

    Returns N * sum_piece(w_i l_i) / sum_global(w_i) on each of the N
    processes; the mean of these over the processes is the global-batch loss.
    The one collective is a 2-number all-reduce, queued on the device.
    """

    def __init__(self, criterion: ClassCountLoss, world_size: int):
        super().__init__()
        if criterion.reduction != "mean":
            raise ValueError(f"a data-parallel loss must reduce by mean, got {criterion.reduction!r}")
        self.criterion = criterion
        self.world_size = world_size

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses, sample_weight = self.criterion.weighted_losses(logits, target)
        count = losses.new_full((), float(len(target)))   # a fill on the device, not a host copy
        weight_sum = count if sample_weight is None else sample_weight.detach().sum()
        totals = torch.stack([weight_sum, count])
        dist.all_reduce(totals)
        return losses.sum() * self.world_size / totals[0]
