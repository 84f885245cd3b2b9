"""Data-parallel training under torchrun: the process group, the global-batch loss, rank agreement.

`torchrun --nproc-per-node N -m tailsam train ...` starts N copies of the
loop. Each process trains on its piece of every global batch (per-process
`optim.batch_size` x N images, the same images in the same order as one
process with the global batch) and DistributedDataParallel averages the
gradients, so N processes take the steps one process would take with the
global batch: exactly so for a model without batch-coupled layers, and with
`train.sync_bn=true` (CUDA) also for BatchNorm. Without SyncBatchNorm each
process normalises with the statistics of its own piece, as every DDP
program does.

Averaging per-process means is not the global-batch mean when the pieces
differ in size or, with class weights (CB, DRW), in total weight. So the loss
here sums the weighted per-sample losses of the piece and divides by the
global sum of weights, times N to undo DDP's average: the gradient then is
that of the global-batch loss, whatever the pieces hold.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from tailsam.errors import ConfigError
from tailsam.losses.base import ClassCountLoss
from tailsam.run.precision import resolve_device


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of one run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1   # processes on this node

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run directory and prints progress."""
        return self.rank == 0


class DistributedFailure(Exception):
    """Another process of the run died or lost contact; this one stops (the checkpoint is intact)."""

    exit_code = 1


def processes_from_environment() -> Processes:
    """RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE as torchrun sets them; one process when absent."""
    try:
        return Processes(rank=int(os.environ.get("RANK", "0")), world_size=int(os.environ.get("WORLD_SIZE", "1")),
                         local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                         local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers "
                          "(launch with torchrun)") from None


def process_device(setting: str, processes: Processes) -> torch.device:
    """The device of this process: under torchrun, "auto" and "cuda" mean the GPU of its LOCAL_RANK."""
    if not processes.distributed:
        return resolve_device(setting)
    if setting.startswith("cuda:"):
        raise ConfigError(f"train.device={setting}: under torchrun each process takes the GPU of its "
                          "LOCAL_RANK; use train.device=cuda (or auto), and CUDA_VISIBLE_DEVICES to pick GPUs")
    device = resolve_device(setting)
    if device.type == "cuda":
        if processes.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {processes.local_rank} but only {torch.cuda.device_count()} GPU(s) "
                              "are visible; start at most one process per GPU (--nproc-per-node)")
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    return device


@contextmanager
def process_group(processes: Processes, device: torch.device) -> Iterator[None]:
    """Join the run's process group (NCCL on GPUs, gloo on CPUs) for the block; nothing for one process.

    The rendezvous is torchrun's (MASTER_ADDR/MASTER_PORT in the environment),
    so one node and several nodes work alike. A group the caller already
    joined is used as it is and left open.
    """
    if not processes.distributed or dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=processes.rank, world_size=processes.world_size,
                            device_id=device if device.type == "cuda" else None)
    try:
        yield
    finally:
        dist.destroy_process_group()


class GlobalBatchLoss(nn.Module):
    """`criterion`'s mean over the global batch, scaled so that DDP's gradient average gives its gradient.

    Returns N * sum_piece(w_i l_i) / sum_global(w_i) on each of the N
    processes; the mean of these over the processes is the global-batch loss.
    `images` holds the global batch's image count after each call (for logs).
    The one collective is a 2-number all-reduce, queued on the device.
    """

    def __init__(self, criterion: ClassCountLoss, world_size: int):
        super().__init__()
        if criterion.reduction != "mean":
            raise ValueError(f"a data-parallel loss must reduce by mean, got {criterion.reduction!r}")
        self.criterion = criterion
        self.world_size = world_size
        self.images: torch.Tensor | None = None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses, sample_weight = self.criterion.weighted_losses(logits, target)
        count = losses.new_full((), float(len(target)))   # a fill on the device, not a host copy
        weight_sum = count if sample_weight is None else sample_weight.detach().sum()
        totals = torch.stack([weight_sum, count])
        dist.all_reduce(totals)
        self.images = totals[1]
        return losses.sum() * self.world_size / totals[0]


def wrap_model(model: nn.Module, processes: Processes, device: torch.device, *, sync_bn: bool) -> nn.Module:
    """DistributedDataParallel around `model` (SyncBatchNorm first, if asked); `model` itself for one process.

    DDP copies rank 0's weights and buffers to every process here, so all start equal.
    """
    if not processes.distributed:
        return model
    if sync_bn:
        if device.type != "cuda":
            raise ConfigError("train.sync_bn=true needs CUDA devices (PyTorch's SyncBatchNorm has no CPU "
                              "version); drop it, or use a model without BatchNorm for exact equivalence")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def copy_buffers_from_main(model: nn.Module, processes: Processes) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics).

    DDP broadcasts them at the start of each training forward, but the forward
    then moves each process's copy with its own piece; evaluating with those
    would score a model that no checkpoint holds.
    """
    if processes.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def sum_over_processes(tensor: torch.Tensor, processes: Processes) -> torch.Tensor:
    """The element-wise sum of `tensor` over all processes (a copy; `tensor` itself for one process)."""
    if not processes.distributed:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total


def any_process(flag: bool, processes: Processes, device: torch.device) -> bool:
    """True on every process when `flag` is true on at least one (a host synchronisation)."""
    if not processes.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def check_same_everywhere(values: list[int], processes: Processes, device: torch.device, what: str) -> None:
    """Raise ConfigError on every process unless `values` are equal on all of them."""
    if not processes.distributed:
        return
    low = torch.tensor(values, dtype=torch.float64, device=device)
    high = low.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise ConfigError(f"the processes disagree on {what}; every process must see the same --out "
                          "(a shared filesystem across nodes)")


def broadcast_from_main(value, processes: Processes):
    """Rank 0's `value` (any picklable object) on every process."""
    if not processes.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
