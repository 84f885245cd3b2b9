"""The processes of one run, and the few collectives the run needs, as no-ops for one process.

`torchrun --nproc-per-node N -m tailsam train ...` starts N copies of the
loop. Each process trains on its piece of every global batch (per-process
`optim.batch_size` x N images, the same images in the same order as one
process with the global batch) and DistributedDataParallel averages the
gradients, so N processes take the steps one process would take with the
global batch: exactly so for a model without batch-coupled layers, and with
`train.sync_bn=true` (CUDA) also for BatchNorm. Without SyncBatchNorm each
process normalises with the statistics of its own piece, as every DDP
program does. The loss that makes the average exact with unequal pieces and
class weights is tailsam.losses.GlobalBatchLoss.

Everything else that is data-parallel is a method of `Processes`: `sum`,
`any`, `broadcast`, `check_same`, `copy_buffers_from_main`. With one process
each returns its input and touches no process group, so the code that calls
them reads the same either way.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tailsam.errors import ConfigError


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of one run (one process: rank 0 of 1), and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1   # processes on this node
    device: torch.device = torch.device("cpu")   # where this process's collectives run

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run directory and prints progress."""
        return self.rank == 0

    def on(self, device: torch.device) -> Processes:
        """The same processes, with their collectives on `device`."""
        return dataclasses.replace(self, device=device)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `tensor` over all processes (a copy; `tensor` itself for one process)."""
        if not self.distributed:
            return tensor
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is true on at least one (a host synchronisation)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast(self, value):
        """Rank 0's `value` (any picklable object) on every process."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, values: list[int], what: str) -> None:
        """Raise ConfigError on every process unless `values` are equal on all of them."""
        if not self.distributed:
            return
        low = torch.tensor(values, dtype=torch.float64, device=self.device)
        high = low.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if not torch.equal(low, high):
            raise ConfigError(f"the processes disagree on {what}; every process must see the same --out "
                              "(a shared filesystem across nodes)")

    def copy_buffers_from_main(self, model: nn.Module) -> None:
        """Give every process rank 0's buffers (BatchNorm running statistics).

        DDP broadcasts them at the start of each training forward, but the forward
        then moves each process's copy with its own piece; evaluating with those
        would score a model that no checkpoint holds.
        """
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def wrap(self, model: nn.Module, *, sync_bn: bool) -> nn.Module:
        """DistributedDataParallel around `model` (SyncBatchNorm first, if asked); `model` itself for one process.

        DDP copies rank 0's weights and buffers to every process here, so all start equal.
        """
        if not self.distributed:
            return model
        if sync_bn:
            if self.device.type != "cuda":
                raise ConfigError("train.sync_bn=true needs CUDA devices (PyTorch's SyncBatchNorm has no CPU "
                                  "version); drop it, or use a model without BatchNorm for exact equivalence")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def processes_from_environment() -> Processes:
    """RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE as torchrun sets them; one process when absent."""
    try:
        return Processes(rank=int(os.environ.get("RANK", "0")), world_size=int(os.environ.get("WORLD_SIZE", "1")),
                         local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                         local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers "
                          "(launch with torchrun)") from None
