"""Helpers shared by the benchmark scripts: data location, timing, memory."""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_root(cli_value: str | None) -> Path:
    """--root, else $TAILSAM_DATA_ROOT, else ../shared/data beside the checkout."""
    return Path(cli_value or os.environ.get("TAILSAM_DATA_ROOT") or SHARED_DATA)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Wall seconds of fn(), with the device drained before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def machine(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def memory(device: torch.device) -> dict:
    """Peak host RSS (MiB) and, on CUDA, peak allocated GPU memory (MiB)."""
    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out
