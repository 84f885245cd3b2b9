"""What this process has and used: peak memory (host RSS, GPU), free memory, CPU cores."""

from __future__ import annotations

import os
import resource

import torch


def peak_memory(device: torch.device | str | None = None) -> dict:
    """{"peak_rss_mib": ..., "peak_gpu_mib": ...} in MiB; the GPU figure only for a CUDA device.

    `device=None` reports CUDA when this process initialised it (a training run
    on "auto" may or may not have). RSS is the kernel's high-water mark
    (getrusage ru_maxrss, KiB on Linux); GPU memory is what torch's allocator
    handed out at its peak (torch.cuda.max_memory_allocated), not the larger
    amount it reserved from the driver.
    """
    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device is None:
        device = torch.device("cuda") if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    if device is not None and torch.device(device).type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on `device`: the GPU's free memory, or MemAvailable of /proc/meminfo
    on the CPU; None where neither can be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpus_per_process() -> int:
    """The node's usable cores shared among its training processes (torchrun sets LOCAL_WORLD_SIZE), at least 1."""
    try:
        local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local_processes = 1   # train() refuses a malformed value in one line before any data is built
    return max(1, usable_cpus() // local_processes)
