"""Joining and leaving a data-parallel run: the process group, each process's device, lost peers.

How the processes share the work, and their collectives, is tailsam.run.processes.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist

from tailsam.errors import ConfigError
from tailsam.run.precision import resolve_device
from tailsam.run.processes import Processes


class DistributedFailure(Exception):
    """Another process of the run died or lost contact; this one stops (the checkpoint is intact)."""

    exit_code = 1


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


def lost_contact(err: RuntimeError, processes: Processes, checkpoint) -> DistributedFailure | None:
    """The one-line failure to raise when a collective failed because another process is gone, else None.

    gloo and NCCL raise plain RuntimeErrors too, so the message is what tells.
    """
    text = str(err)
    if not processes.distributed or not (isinstance(err, dist.DistError)
                                         or any(mark in text for mark in ("gloo", "NCCL", "Connection", "c10d"))):
        return None
    # "[.../pair.cc:561] Connection closed by peer [127.0.0.1]:41693. This is typically ..." -> its core
    reason = re.sub(r"^\[[^\]]*\]\s*", "", text.strip().splitlines()[0]).split(". ")[0][:200]
    return DistributedFailure(f"process {processes.rank} of {processes.world_size} lost contact with the others "
                              f"({reason}); {checkpoint} holds the last saved state: run the same command to resume")
